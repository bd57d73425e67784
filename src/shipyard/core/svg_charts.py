"""The reports' charts as inline SVG: lines on the unit square (curves) and lines over time.

Built on the report kit (`core/html_kit.py`); plain string building, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shipyard.core.html_kit import (
    COLORS,
    HALO,
    SIGNAL_COLOR,
    SMALL_TEXT,
    escape,
    is_number,
    runs,
    short,
    svg_open,
    ticks,
)

__all__ = ["Series", "time_chart", "unit_chart"]


@dataclass(frozen=True)
class Series:
    """One line of a chart over time.

    Args:
        name: its name in the legend and tooltips.
        values: a number per bucket, or None for a bucket without data (drawn as a gap).
        color: the line's colour.
        dash: an SVG dash pattern ('2 3'), or '' for a solid line.
    """

    name: str
    values: Sequence[Any]
    color: str
    dash: str = ""


def unit_chart(
    series: Sequence[tuple[str, Sequence[float], Sequence[float], str]],
    xlabel: str,
    ylabel: str,
    diagonal: str | None,
    *,
    dots: bool = False,
) -> str:
    """Lines on [0, 1] x [0, 1] (ROC, precision-recall, reliability), each (name, xs, ys, colour).

    Args:
        series: the lines.
        xlabel: the x axis's label.
        ylabel: the y axis's label.
        diagonal: draw the dashed diagonal (chance, perfect calibration) when set.
        dots: mark every point.
    """
    w, h, pad = 320, 260, 36

    def sx(v: float) -> float:
        return pad + float(v) * (w - pad - 10)

    def sy(v: float) -> float:
        return h - pad - float(v) * (h - pad - 10)

    out = [svg_open(w, h)]
    out.append(
        f"<rect x='{pad}' y='10' width='{w - pad - 10}' height='{h - pad - 10}' fill='none' "
        "stroke='#d0d7de'/>"
    )
    for t in (0.0, 0.5, 1.0):
        out.append(
            f"<text x='{sx(t):.0f}' y='{h - pad + 14}' font-size='10' text-anchor='middle'>{t:g}</text>"
        )
        out.append(f"<text x='{pad - 4}' y='{sy(t) + 3:.0f}' {SMALL_TEXT}>{t:g}</text>")
    out.append(
        f"<text x='{(w + pad) / 2:.0f}' y='{h - 4}' font-size='11' text-anchor='middle'>"
        f"{escape(xlabel)}</text>"
    )
    out.append(
        f"<text x='10' y='{(h - pad) / 2:.0f}' font-size='11' text-anchor='middle' "
        f"transform='rotate(-90 10 {(h - pad) / 2:.0f})'>{escape(ylabel)}</text>"
    )
    if diagonal:
        out.append(
            f"<line x1='{sx(0):.1f}' y1='{sy(0):.1f}' x2='{sx(1):.1f}' y2='{sy(1):.1f}' "
            "stroke='#8c959f' stroke-dasharray='4 3'/>"
        )
    for name, xs, ys, color in series:
        points = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(xs, ys, strict=False))
        out.append(
            f"<polyline fill='none' stroke='{color}' stroke-width='2' points='{points}'>"
            f"<title>{escape(name)}</title></polyline>"
        )
        if dots:
            out += [
                f"<circle cx='{sx(a):.1f}' cy='{sy(b):.1f}' r='3' fill='{color}'/>"
                for a, b in zip(xs, ys, strict=False)
            ]
    out.append("</svg>")
    return "".join(out)


def time_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    band: tuple[Sequence[Any], Sequence[Any]] | None = None,
    baseline: float | None = None,
    markers: Mapping[int, str] | None = None,
    zero: bool = False,
    w: int = 1060,
    fmt: Callable[[Any], str] | None = None,
) -> str:
    """A line per series over the buckets; gaps where a bucket has no value.

    Args:
        labels: the buckets' labels along the x axis.
        series: the lines.
        band: the lower and upper bounds of an interval, drawn as a shaded band.
        baseline: a dashed horizontal line at this value.
        markers: per bucket, text marking an event there (a detector's signal).
        zero: start the y axis at zero.
        w: the chart's width in pixels.
        fmt: how the y axis's values are written (default: `short`).
    """
    fmt = fmt or short
    values = [float(v) for s in series for v in s.values if is_number(v)]
    values += [float(v) for v in (*band[0], *band[1]) if is_number(v)] if band else []
    if not values:
        return "<p class='muted'>no data in this window</p>"
    values += [baseline] if baseline is not None else []
    lo, hi = min([*values, 0.0] if zero else values), max(values)
    if hi == lo:
        hi, lo = hi + (abs(hi) * 0.1 or 1.0), lo if zero else lo - (abs(lo) * 0.1 or 1.0)
    steps = ticks(lo, hi)
    lo, hi = steps[0], steps[-1]
    h, left, right, top, bottom = 240, 52, 12, 30, 34
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (i + 0.5) * (w - left - right) / n

    def y(v: Any) -> float:
        return top + (hi - float(v)) / (hi - lo) * (h - top - bottom)

    out = [svg_open(w, h)]
    for v in steps:
        out.append(f"<line x1='{left}' y1='{y(v):.1f}' x2='{w - right}' y2='{y(v):.1f}' stroke='#eaeef2'/>")
        out.append(f"<text x='{left - 4}' y='{y(v) + 3:.1f}' {SMALL_TEXT}>{fmt(v)}</text>")
    every = math.ceil(n / 10)
    for i, label in enumerate(labels):
        if i % every == 0:
            out.append(f"<text x='{x(i):.1f}' y='{h - bottom + 14}' font-size='10' text-anchor='middle'>")
            out.append(f"{escape(label)}</text>")
    legend: list[tuple[str, str, str]] = [(s.name, s.color, s.dash) for s in series]
    if band:
        for run in runs(
            [(a, b) if is_number(a) and is_number(b) else None for a, b in zip(*band, strict=False)]
        ):
            upper = " ".join(f"{x(i):.1f},{y(v[1]):.1f}" for i, v in run)
            lower = " ".join(f"{x(i):.1f},{y(v[0]):.1f}" for i, v in reversed(run))
            out.append(f"<polygon points='{upper} {lower}' fill='{COLORS[0]}' fill-opacity='.15' ")
            out.append(f"stroke='{COLORS[0]}' stroke-opacity='.3'/>")
        legend.append(("95% interval", "#a5c8f5", ""))
    if baseline is not None:
        out.append(f"<line x1='{left}' y1='{y(baseline):.1f}' x2='{w - right}' y2='{y(baseline):.1f}' ")
        out.append("stroke='#57606a' stroke-dasharray='6 4'/>")
        legend.append((f"baseline {short(baseline)}", "#57606a", "6 4"))
    for i, text in (markers or {}).items():
        if 0 <= i < n:
            out.append(f"<line x1='{x(i):.1f}' y1='{top}' x2='{x(i):.1f}' y2='{h - bottom}' ")
            out.append(
                f"stroke='{SIGNAL_COLOR}' stroke-dasharray='3 3'/><text x='{x(i) + 3:.1f}' y='{top + 10}' "
            )
            out.append(f"font-size='10' fill='{SIGNAL_COLOR}' {HALO}>{escape(text)}</text>")
    for s in series:
        for run in runs([v if is_number(v) else None for v in s.values]):
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            dash = f" stroke-dasharray='{s.dash}'" if s.dash else ""
            out.append(f"<polyline fill='none' stroke='{s.color}' stroke-width='2'{dash} points='{points}'/>")
            out += [
                f"<circle cx='{x(i):.1f}' cy='{y(v):.1f}' r='2.5' fill='{s.color}'>"
                f"<title>{escape(s.name)} {escape(labels[i] if i < len(labels) else i)}: "
                f"{fmt(v)}</title></circle>"
                for i, v in run
            ]
    at = left
    for name, color, dash in legend:
        stroke = f" stroke-dasharray='{dash}'" if dash else ""
        out.append(f"<line x1='{at}' y1='12' x2='{at + 22}' y2='12' stroke='{color}' stroke-width='3'")
        out.append(f"{stroke}/>")
        out.append(f"<text x='{at + 26}' y='16' font-size='11'>{escape(name)}</text>")
        at += 40 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)
