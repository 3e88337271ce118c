"""Small inline SVG line charts for the weekly report (no external assets, no JavaScript)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Series", "line_chart"]

_PAD_L, _PAD_R, _PAD_T, _PAD_B = 34, 8, 8, 18


@dataclass(frozen=True)
class Series:
    """One line: a name, a colour and values (None = gap, e.g. suppressed or not evaluated)."""

    name: str
    colour: str
    values: Sequence[float | None]


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _scale(lo: float, hi: float, size: float, flip: bool) -> tuple[float, float]:
    span = (hi - lo) or 1.0
    k = size / span
    return (-k, size + lo * k) if flip else (k, -lo * k)


def _path(values: Sequence[float | None], xs: list[float], ky: float, cy: float) -> tuple[str, str]:
    parts: list[str] = []
    dots: list[str] = []
    pen = "M"
    for x, v in zip(xs, values, strict=True):
        if v is None or not math.isfinite(v):
            pen = "M"
            continue
        y = _PAD_T + cy + ky * v
        parts.append(f"{pen}{x:.1f},{y:.1f}")
        dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2"/>')
        pen = "L"
    return " ".join(parts), "".join(dots)


def line_chart(labels: Sequence[str], series: Sequence[Series], thresholds: Sequence[tuple[float, str]] = (),
               title: str = "", width: int = 260, height: int = 110, y_min: float | None = None) -> str:
    """An SVG line chart as a string.

    Parameters
    ----------
    labels : sequence of str
        x-axis labels (first and last are printed).
    series : sequence of Series
        Lines to draw; gaps where a value is None.
    thresholds : sequence of (float, str)
        Dashed horizontal reference lines (value, colour).
    title : str
        Accessible title (``<title>``), also used as aria-label.
    width, height : int
        Size in CSS pixels.
    y_min : float or None
        Lower end of the y axis (default: the smallest value or threshold).
    """
    values = [v for s in series for v in _finite(s.values)] + [t for t, _ in thresholds]
    lo = min(values, default=0.0) if y_min is None else y_min
    hi = max(values, default=1.0)
    lo, hi = math.floor(lo), math.ceil(hi) if hi > lo else lo + 1
    inner_w, inner_h = width - _PAD_L - _PAD_R, height - _PAD_T - _PAD_B
    n = max(len(labels), 1)
    xs = [_PAD_L + (inner_w * i / (n - 1) if n > 1 else inner_w / 2) for i in range(n)]
    ky, cy = _scale(lo, hi, inner_h, flip=True)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
           f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{inner_w}" height="{inner_h}" fill="#fafafa" '
           'stroke="#ccc"/>']
    for value, colour in thresholds:
        y = _PAD_T + cy + ky * value
        out.append(f'<line x1="{_PAD_L}" x2="{_PAD_L + inner_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
                   'stroke-dasharray="4 3"/>')
    for label, y in ((f"{hi:g}", _PAD_T + 8), (f"{lo:g}", _PAD_T + inner_h)):
        out.append(f'<text x="{_PAD_L - 4}" y="{y}" font-size="9" text-anchor="end">{escape(label)}</text>')
    if labels:
        out.append(f'<text x="{xs[0]:.1f}" y="{height - 4}" font-size="9">{escape(labels[0])}</text>')
        out.append(f'<text x="{xs[-1]:.1f}" y="{height - 4}" font-size="9" text-anchor="end">'
                   f'{escape(labels[-1])}</text>')
    for s in series:
        d, dots = _path(s.values, xs, ky, cy)
        if d:
            out.append(f'<path d="{d}" fill="none" stroke="{s.colour}" stroke-width="1.8"/>'
                       f'<g fill="{s.colour}">{dots}</g>')
    out.append("</svg>")
    return "".join(out)
