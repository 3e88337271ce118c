"""Small line charts for the weekly report: inline SVG for the outbox page, PNG for e-mail.

A chart is described once by a :class:`ChartSpec` (labels, series with gaps, dashed thresholds). The SVG form
(:func:`line_chart`, :func:`svg_chart`) needs no external assets or JavaScript and carries its spec as JSON in
an SVG ``<metadata>`` element, so the e-mail step can turn the outbox page's charts into PNG images
(:func:`png_chart`, :func:`inline_png`) without rebuilding the report. Common mail clients do not render inline
SVG; they do render ``<img src="cid:...">`` parts (RFC 2392).

Every state a force passes through renders: no weeks yet (empty labels: a framed "no data yet" box), a single
week (one dot in the middle), gaps (None, NaN or infinite values break the line; isolated points stay visible
as dots) and series with no value at all ("no values to show"). The y axis spans ``y_min`` (or the smallest
value) to the largest value or threshold; a value below ``y_min`` widens the axis rather than leaving the box.

matplotlib (Agg backend, no display needed) is imported only inside :func:`png_chart`, so the service and the
outbox path never load it.
"""

from __future__ import annotations

import html as html_lib
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["ChartSpec", "InlineImage", "Series", "inline_png", "line_chart", "png_chart", "spec_from_svg",
           "svg_chart"]

_PAD_L, _PAD_R, _PAD_T, _PAD_B = 34, 8, 8, 18
_NO_WEEKS = "no data yet"
_NO_VALUES = "no values to show"
_METADATA = re.compile(r'<metadata class="chart-spec">(.*?)</metadata>', re.S)
_SVG = re.compile(r"<svg\b.*?</svg>", re.S)


@dataclass(frozen=True)
class Series:
    """One line: a name, a colour and values (None = gap, e.g. suppressed or not evaluated)."""

    name: str
    colour: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class ChartSpec:
    """Everything needed to draw one chart, in either format.

    Attributes
    ----------
    labels : tuple of str
        x-axis labels, one per point (first and last are printed).
    series : tuple of Series
        Lines; each has exactly ``len(labels)`` values.
    thresholds : tuple of (float, str)
        Dashed horizontal reference lines (value in the series' unit, CSS colour).
    title : str
        Accessible title (SVG ``<title>`` and aria-label; PNG alt text).
    width, height : int
        Size in CSS pixels.
    y_min : float or None
        Preferred lower end of the y axis (default: the smallest value or threshold).
    """

    labels: tuple[str, ...]
    series: tuple[Series, ...]
    thresholds: tuple[tuple[float, str], ...] = ()
    title: str = ""
    width: int = 260
    height: int = 110
    y_min: float | None = None

    def __post_init__(self) -> None:
        for s in self.series:
            if len(s.values) != len(self.labels):
                raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(self.labels)} labels")


@dataclass(frozen=True)
class InlineImage:
    """A PNG part of an e-mail, referenced from the HTML as ``cid:<content_id>``."""

    content_id: str
    png: bytes


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _y_range(spec: ChartSpec) -> tuple[float, float]:
    """Whole-number axis ends with ``lo < hi`` (unit of the series)."""
    values = [v for s in spec.series for v in _finite(s.values)] + [t for t, _ in spec.thresholds if math.isfinite(t)]
    lo = min(values, default=0.0)
    if spec.y_min is not None and math.isfinite(spec.y_min):
        lo = min(lo, spec.y_min) if values else spec.y_min
    hi = max(values, default=lo + 1.0)
    lo_i, hi_i = math.floor(lo), math.ceil(hi)
    return float(lo_i), float(hi_i if hi_i > lo_i else lo_i + 1)


def _xs(n: int, inner_w: float) -> list[float]:
    return [_PAD_L + (inner_w * i / (n - 1) if n > 1 else inner_w / 2) for i in range(n)]


def _path(values: Sequence[float | None], xs: list[float], y_of: dict[str, float]) -> tuple[str, str]:
    parts: list[str] = []
    dots: list[str] = []
    pen = "M"
    for x, v in zip(xs, values, strict=True):
        if v is None or not math.isfinite(v):
            pen = "M"
            continue
        y = _PAD_T + y_of["c"] + y_of["k"] * v
        parts.append(f"{pen}{x:.1f},{y:.1f}")
        dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2"/>')
        pen = "L"
    return " ".join(parts), "".join(dots)


def _spec_json(spec: ChartSpec) -> str:
    def clean(v: float | None) -> float | None:
        return float(v) if v is not None and math.isfinite(v) else None

    return json.dumps({"labels": list(spec.labels), "thresholds": [list(t) for t in spec.thresholds],
                       "series": [{"name": s.name, "colour": s.colour, "values": [clean(v) for v in s.values]}
                                  for s in spec.series],
                       "title": spec.title, "width": spec.width, "height": spec.height, "y_min": spec.y_min},
                      separators=(",", ":"))


def spec_from_svg(svg: str) -> ChartSpec | None:
    """The :class:`ChartSpec` embedded in an SVG made by :func:`svg_chart`; None for any other SVG."""
    m = _METADATA.search(svg)
    if not m:
        return None
    d = json.loads(html_lib.unescape(m.group(1)))
    return ChartSpec(tuple(d["labels"]), tuple(Series(s["name"], s["colour"], tuple(s["values"])) for s in d["series"]),
                     tuple((float(t[0]), str(t[1])) for t in d["thresholds"]), d["title"], int(d["width"]),
                     int(d["height"]), d["y_min"])


def _note(x: float, y: float, text: str) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="10" fill="#555" text-anchor="middle">{escape(text)}</text>'


def svg_chart(spec: ChartSpec) -> str:
    """The chart as an inline SVG string (see the module docstring for empty and gappy series)."""
    w, h = spec.width, spec.height
    inner_w, inner_h = w - _PAD_L - _PAD_R, h - _PAD_T - _PAD_B
    lo, hi = _y_range(spec)
    k = -inner_h / (hi - lo)
    y_of = {"k": k, "c": inner_h - lo * k}
    xs = _xs(len(spec.labels), inner_w)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
           f'aria-label="{escape(spec.title)}" viewBox="0 0 {w} {h}"><title>{escape(spec.title)}</title>',
           f'<metadata class="chart-spec">{escape(_spec_json(spec), quote=False)}</metadata>',
           f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{inner_w}" height="{inner_h}" fill="#fafafa" stroke="#ccc"/>']
    for value, colour in spec.thresholds:
        if math.isfinite(value):
            y = _PAD_T + y_of["c"] + k * value
            out.append(f'<line x1="{_PAD_L}" x2="{_PAD_L + inner_w}" y1="{y:.1f}" y2="{y:.1f}" '
                       f'stroke="{escape(colour)}" stroke-dasharray="4 3"/>')
    for label, y in ((f"{hi:g}", _PAD_T + 8), (f"{lo:g}", _PAD_T + inner_h)):
        out.append(f'<text x="{_PAD_L - 4}" y="{y}" font-size="9" text-anchor="end">{escape(label)}</text>')
    centre = (_PAD_L + inner_w / 2, _PAD_T + inner_h / 2 + 3)
    if not spec.labels:
        out.append(_note(*centre, _NO_WEEKS))
    else:
        out.append(f'<text x="{xs[0]:.1f}" y="{h - 4}" font-size="9">{escape(spec.labels[0])}</text>')
        if len(xs) > 1:
            out.append(f'<text x="{xs[-1]:.1f}" y="{h - 4}" font-size="9" text-anchor="end">'
                       f'{escape(spec.labels[-1])}</text>')
        if not any(_finite(s.values) for s in spec.series):
            out.append(_note(*centre, _NO_VALUES))
    for s in spec.series:
        d, dots = _path(s.values, xs, y_of)
        if dots:
            out.append(f'<path d="{d}" fill="none" stroke="{escape(s.colour)}" stroke-width="1.8"/>'
                       f'<g fill="{escape(s.colour)}">{dots}</g>')
    out.append("</svg>")
    return "".join(out)


def line_chart(labels: Sequence[str], series: Sequence[Series], thresholds: Sequence[tuple[float, str]] = (),
               title: str = "", width: int = 260, height: int = 110, y_min: float | None = None) -> str:
    """An SVG line chart as a string (:func:`svg_chart` of the equivalent :class:`ChartSpec`).

    Parameters
    ----------
    labels : sequence of str
        x-axis labels (first and last are printed); may be empty.
    series : sequence of Series
        Lines to draw; gaps where a value is None (or not finite).
    thresholds : sequence of (float, str)
        Dashed horizontal reference lines (value, colour).
    title : str
        Accessible title (``<title>``), also used as aria-label.
    width, height : int
        Size in CSS pixels.
    y_min : float or None
        Preferred lower end of the y axis.
    """
    return svg_chart(ChartSpec(tuple(labels), tuple(series), tuple(thresholds), title, width, height, y_min))


def png_chart(spec: ChartSpec, scale: int = 2) -> bytes:
    """The chart as PNG bytes (``scale`` x the CSS size in pixels), drawn with matplotlib's Agg backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100 * scale
    fig = Figure(figsize=(spec.width / 100, spec.height / 100), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((_PAD_L / spec.width, _PAD_B / spec.height, 1 - (_PAD_L + _PAD_R) / spec.width,
                       1 - (_PAD_T + _PAD_B) / spec.height))
    ax.set_facecolor("#fafafa")
    lo, hi = _y_range(spec)
    n = len(spec.labels)
    ax.set_xlim(-0.5, 0.5) if n <= 1 else ax.set_xlim(-0.02 * (n - 1), 1.02 * (n - 1))
    ax.set_ylim(lo, hi)
    ax.set_yticks([lo, hi], [f"{lo:g}", f"{hi:g}"], fontsize=6)
    ticks = [0, n - 1] if n > 1 else [0] if n == 1 else []
    ax.set_xticks(ticks, [spec.labels[i] for i in ticks], fontsize=6)
    for value, colour in spec.thresholds:
        if math.isfinite(value):
            ax.axhline(value, color=colour, linestyle=(0, (4, 3)), linewidth=0.8)
    for s in spec.series:
        ys = [v if v is not None and math.isfinite(v) else math.nan for v in s.values]
        ax.plot(range(n), ys, color=s.colour, linewidth=1.4, marker="o", markersize=2.5)
    if n == 0 or not any(_finite(s.values) for s in spec.series):
        ax.text(0.5, 0.5, _NO_WEEKS if n == 0 else _NO_VALUES, transform=ax.transAxes, ha="center",
                va="center", fontsize=7, color="#555")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def inline_png(page: str, prefix: str = "chart") -> tuple[str, list[InlineImage]]:
    """Replace every chart SVG of an HTML page by ``<img src="cid:...">`` and render the PNG parts.

    SVGs without an embedded spec are left as they are. Content ids are ``<prefix>-<n>@fatigue``.
    """
    images: list[InlineImage] = []

    def swap(m: re.Match[str]) -> str:
        spec = spec_from_svg(m.group(0))
        if spec is None:
            return m.group(0)
        cid = f"{prefix}-{len(images) + 1}@fatigue"
        images.append(InlineImage(cid, png_chart(spec)))
        return (f'<img src="cid:{cid}" width="{spec.width}" height="{spec.height}" '
                f'alt="{escape(spec.title)}" style="margin-right:.6rem">')

    return _SVG.sub(swap, page), images
