"""Charts of attributions as inline SVG: importance bars and the SHAP summary plot (a beeswarm).

The summary plot has one row per feature (the most important on top); each dot is one row of the
sample, placed by its attribution and coloured by the feature's value: low blue to high red for
numbers, a colour per category for categories, grey where the value is missing or not shown (a
pii feature). Built on the report kit (`core/html_kit.py`); plain string building, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.core.html_kit import COLORS, SMALL_TEXT, escape, is_number, short, svg_open, ticks

__all__ = ["CATEGORY_COLORS", "MISSING_COLOR", "beeswarm", "importance_bars", "value_color"]

CATEGORY_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
    "#7f7f7f",
)  # fmt: skip
"""One colour per category (the last one for the categories beyond the others)."""

MISSING_COLOR = "#c9ced4"
_LOW, _HIGH = (0, 138, 255), (255, 0, 82)  # shap's own ends of the scale: blue to red
_LABEL_WIDTH = 150


def value_color(share: Any) -> str:
    """The colour of a feature value at `share` of the way from its lowest (blue) to its highest
    (red) in the sample; grey for None."""
    if not is_number(share):
        return MISSING_COLOR
    t = min(max(float(share), 0.0), 1.0)
    r, g, b = (round(lo + (hi - lo) * t) for lo, hi in zip(_LOW, _HIGH, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def importance_bars(importance: Mapping[str, float], *, color: str = COLORS[0], w: int = 520) -> str:
    """Horizontal bars of mean |attribution| per feature, the largest on top.

    Args:
        importance: per feature, its importance (>= 0).
        color: the bars' colour.
        w: the chart's width in pixels.
    """
    items = sorted(importance.items(), key=lambda kv: -float(kv[1]))
    if not items:
        return "<p class='muted'>no features</p>"
    top = max(float(v) for _, v in items) or 1.0
    row, pad = 20, 8
    h = pad * 2 + row * len(items)
    span = w - _LABEL_WIDTH - 70
    out = [svg_open(w, h)]
    for i, (name, value) in enumerate(items):
        y = pad + i * row
        length = span * float(value) / top
        out.append(f"<text x='{_LABEL_WIDTH - 6}' y='{y + 14}' {SMALL_TEXT}>{escape(name)}</text>")
        out.append(
            f"<rect x='{_LABEL_WIDTH}' y='{y + 3}' width='{length:.1f}' height='{row - 6}' fill='{color}'>"
            f"<title>{escape(name)}: {float(value):.4g}</title></rect>"
        )
        out.append(
            f"<text x='{_LABEL_WIDTH + length + 4:.1f}' y='{y + 14}' font-size='10'>{short(value)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def beeswarm(features: Sequence[Mapping[str, Any]], *, w: int = 720, xlabel: str = "attribution") -> str:
    """The SHAP summary plot: per feature, a dot per row at its attribution, coloured by value.

    Args:
        features: in the order shown, each {'name', 'kind' ('numeric', 'categorical' or
            'hidden'), 'attributions': [float], 'colors': [share in [0, 1] (numeric) or category
            index (categorical) or None], 'categories': [label] (categorical)}.
        w: the chart's width in pixels.
        xlabel: the x axis's label.
    """
    values = [float(v) for f in features for v in f.get("attributions", ()) if is_number(v)]
    if not values:
        return "<p class='muted'>no attributions</p>"
    lo, hi = min([*values, 0.0]), max([*values, 0.0])
    if hi == lo:
        lo, hi = lo - 1.0, hi + 1.0
    steps = ticks(lo, hi)
    lo, hi = steps[0], steps[-1]
    row, top, bottom, right = 34, 10, 40, 16
    h = top + bottom + row * len(features)
    left = _LABEL_WIDTH

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (w - left - right)

    out = [svg_open(w, h)]
    for v in steps:
        out.append(f"<line x1='{x(v):.1f}' y1='{top}' x2='{x(v):.1f}' y2='{h - bottom}' stroke='#eaeef2'/>")
        at = f"x='{x(v):.1f}' y='{h - bottom + 14}'"
        out.append(f"<text {at} font-size='10' text-anchor='middle'>{short(v)}</text>")
    out.append(f"<line x1='{x(0):.1f}' y1='{top}' x2='{x(0):.1f}' y2='{h - bottom}' stroke='#8c959f'/>")
    at = f"x='{(w + left) / 2:.0f}' y='{h - 6}'"
    out.append(f"<text {at} font-size='11' text-anchor='middle'>{escape(xlabel)}</text>")
    for i, feature in enumerate(features):
        centre = top + i * row + row / 2
        out.append(f"<text x='{left - 6}' y='{centre + 3:.1f}' {SMALL_TEXT}>{escape(feature['name'])}</text>")
        out += _dots(feature, x, centre, row / 2 - 2)
    out.append("</svg>")
    return "".join(out) + _legend(features)


def _dots(feature: Mapping[str, Any], x: Any, centre: float, room: float) -> list[str]:
    """A feature's dots, piled up where they crowd (each column of 3 pixels fills outward from
    the centre line, alternately above and below)."""
    kind = feature.get("kind")
    categories = list(feature.get("categories") or [])
    colors = list(feature.get("colors") or [])
    filled: dict[int, int] = {}
    out = []
    for j, v in enumerate(feature.get("attributions", ())):
        if not is_number(v):
            continue
        cx = x(float(v))
        slot = round(cx / 3)
        k = filled.get(slot, 0)
        filled[slot] = k + 1
        offset = ((k + 1) // 2) * 2.2 * (1 if k % 2 else -1)
        offset = max(-room, min(room, offset))
        code = colors[j] if j < len(colors) else None
        if kind == "categorical" and isinstance(code, int) and not isinstance(code, bool):
            color = CATEGORY_COLORS[min(code, len(CATEGORY_COLORS) - 1)]
            shown = categories[code] if code < len(categories) else ""
        else:
            color = value_color(code) if kind == "numeric" else MISSING_COLOR
            shown = ""
        title = f"{feature['name']}" + (f" = {shown}" if shown != "" else "") + f": {float(v):.4g}"
        out.append(
            f"<circle cx='{cx:.1f}' cy='{centre + offset:.1f}' r='2.2' fill='{color}' fill-opacity='.85'>"
            f"<title>{escape(title)}</title></circle>"
        )
    return out


def _legend(features: Sequence[Mapping[str, Any]]) -> str:
    """The colour scale, and each categorical feature's colours."""
    scale = "".join(
        f"<span style='display:inline-block;width:14px;height:10px;background:{c}'></span>"
        for c in (value_color(t / 10) for t in range(11))
    )
    grey = f"<span style='color:{MISSING_COLOR}'>&#9679;</span>"
    lines = [
        f"<p class='legend'>feature value: low {scale} high &middot; {grey} missing or not shown (pii)</p>"
    ]
    for feature in features:
        if feature.get("kind") != "categorical":
            continue
        keys = "".join(
            f"<span style='color:{CATEGORY_COLORS[min(k, len(CATEGORY_COLORS) - 1)]}'>&#9679;</span> "
            f"{escape(label)} "
            for k, label in enumerate(feature.get("categories") or [])
        )
        lines.append(f"<p class='legend'><b>{escape(feature['name'])}</b>: {keys}</p>")
    return "".join(lines)
