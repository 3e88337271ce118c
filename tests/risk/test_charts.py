"""Report charts for every state of a force: empty, one week, gaps, no value at all; SVG and PNG alike."""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from risk.charts import ChartSpec, Series, inline_png, line_chart, png_chart, spec_from_svg, svg_chart

SVG_NS = "{http://www.w3.org/2000/svg}"
value = st.one_of(st.none(), st.just(math.nan), st.just(math.inf), st.just(-math.inf),
                  st.floats(-1e6, 1e6, allow_nan=False))


@st.composite
def specs(draw: st.DrawFn) -> ChartSpec:
    n = draw(st.sampled_from([0, 1, 2, 8]) | st.integers(0, 12))
    labels = tuple(f"w{i}" for i in range(n))
    series = tuple(Series(f"s{j}", "#2e86c1", tuple(draw(st.lists(value, min_size=n, max_size=n))))
                   for j in range(draw(st.integers(1, 2))))
    thresholds = tuple(draw(st.lists(st.tuples(st.floats(-100, 100), st.just("#d68910")), max_size=2)))
    y_min = draw(st.none() | st.floats(-50, 50))
    return ChartSpec(labels, series, thresholds, "t <&> title", 260, 110, y_min)


def _points(svg: str) -> list[tuple[float, float]]:
    root = ET.fromstring(svg)
    return [(float(c.get("cx", "nan")), float(c.get("cy", "nan"))) for c in root.iter(f"{SVG_NS}circle")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_svg_is_valid_and_draws_every_finite_point_inside_the_box(spec: ChartSpec) -> None:
    svg = svg_chart(spec)
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == f"{SVG_NS}svg"
    finite = sum(1 for s in spec.series for v in s.values if v is not None and math.isfinite(v))
    pts = _points(svg)
    assert len(pts) == finite
    for x, y in pts:
        assert 34 - 0.1 <= x <= spec.width - 8 + 0.1
        assert 8 - 0.1 <= y <= spec.height - 18 + 0.1
    if not spec.labels:
        assert "no data yet" in svg
    elif finite == 0:
        assert "no values to show" in svg
    assert "nan" not in svg.lower().replace("no values", "").split("<metadata")[0]
    back = spec_from_svg(svg)
    assert back is not None and back.labels == spec.labels and len(back.series) == len(spec.series)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_png_renders_every_state(spec: ChartSpec) -> None:
    png = png_chart(spec)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(png)) as img:
        assert img.size == (spec.width * 2, spec.height * 2)
        colours = img.convert("RGB").getcolors(1_000_000)
    assert colours is not None and len(colours) > 2  # not a blank image: frame, text or lines drawn


def test_single_point_is_a_visible_dot_in_the_middle() -> None:
    svg = line_chart(["w1"], [Series("sleep", "#000", [6.5])], y_min=4)
    (x, _y), = _points(svg)
    assert x == pytest.approx(34 + (260 - 34 - 8) / 2, abs=0.1)


def test_gappy_series_breaks_the_line_but_keeps_isolated_points() -> None:
    svg = line_chart(["a", "b", "c", "d", "e"], [Series("s", "#000", [1.0, None, 2.0, None, 3.0])])
    assert len(_points(svg)) == 3
    path = ET.fromstring(svg).find(f"{SVG_NS}path")
    assert path is not None and "L" not in path.get("d", "")  # three separate moves, no joined segments


def test_value_below_y_min_widens_the_axis() -> None:
    svg = line_chart(["a", "b"], [Series("s", "#000", [2.0, 3.0])], y_min=4)
    assert all(8 <= y <= 110 - 18 for _x, y in _points(svg))


def test_mismatched_series_length_is_refused() -> None:
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        line_chart(["a", "b", "c"], [Series("s", "#000", [1.0, 2.0])])


def test_inline_png_replaces_each_chart_by_a_content_id() -> None:
    page = ("<p>x</p>" + line_chart([], [Series("s", "#000", [])], title="empty")
            + line_chart(["a"], [Series("s", "#000", [1.0])], title="one") + '<svg><circle r="1"/></svg>')
    html, images = inline_png(page)
    assert [i.content_id for i in images] == ["chart-1@fatigue", "chart-2@fatigue"]
    assert html.count('src="cid:chart-') == 2 and "<metadata" not in html
    assert '<svg><circle r="1"/></svg>' in html  # not one of ours: left alone
    assert all(i.png.startswith(b"\x89PNG") for i in images)
