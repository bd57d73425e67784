"""The HTML report kit: one look, one way to write numbers, one scaffold for inline SVG.

The evaluation and monitoring reports (and the model card and UI after them) are single
self-contained files: inline CSS and SVG, no script runs, no network. This module holds what they
share: the page (`document`) with its base style, the data embedded as JSON (`json_script`), the
formatting of numbers, shares and times, and the pieces every chart needs (`svg_open`, round
`ticks`, the `runs` of values between gaps). Plain string building: no I/O.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from shipyard.core.jsonsafe import json_safe

__all__ = [
    "BASE_STYLE",
    "COLORS",
    "HALO",
    "SIGNAL_COLOR",
    "SMALL_TEXT",
    "badge",
    "document",
    "escape",
    "figure",
    "interval",
    "is_number",
    "json_script",
    "number",
    "p_value",
    "percent",
    "runs",
    "short",
    "svg_open",
    "tick_label",
    "ticks",
    "when",
]

BASE_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1c2128;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de;
padding-bottom:.3rem}.muted{color:#57606a}table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:right}th{background:#f6f8fa}
td:first-child,th:first-child{text-align:left}.pass{color:#1a7f37;font-weight:600}
.fail{color:#cf222e;font-weight:600}.charts{display:flex;flex-wrap:wrap}figure{margin:0}
figcaption{font-weight:600}.legend span{margin-right:1rem}
.badge{display:inline-block;border-radius:1rem;color:#fff}
"""
"""The rules every report shares; a report appends its own (later rules win)."""

SMALL_TEXT = "font-size='10' text-anchor='end'"
"""SVG attributes of an axis's tick text."""
HALO = "stroke='#fff' stroke-width='3' paint-order='stroke'"
"""SVG attributes that keep text legible over lines."""
COLORS = ("#1f6feb", "#d97706")
"""The first and second series (challenger and champion, reference and current)."""
SIGNAL_COLOR = "#cf222e"
"""Whatever signals trouble: detector marks, the error rate."""


def document(title: str, style: str, body: Sequence[str]) -> str:
    """A whole page: the base style and `style` inline, `title` as its title and first heading.

    Args:
        title: the page's title (escaped here).
        style: the report's own CSS rules, after the base ones.
        body: the page's parts after the heading, joined by newlines.
    """
    head = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>\n"
        f"<title>{escape(title)}</title><style>{BASE_STYLE}{style}</style></head><body>\n"
        f"<h1>{escape(title)}</h1>"
    )
    return "\n".join([head, *body, "</body></html>"])


def json_script(element_id: str, data: Any) -> str:
    """`data` embedded as a JSON block that no script runs, for tools that read the report.

    Markup characters are written as JSON escapes, so the data can never close or open a tag.
    """
    payload = json.dumps(json_safe(data, other=str))
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"<script type='application/json' id='{escape(element_id)}'>{payload}</script>"


def escape(value: Any) -> str:
    """`value` as text safe in HTML content and quoted attributes; None as nothing."""
    return html.escape("" if value is None else str(value), quote=True)


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any, spec: str = ".4f") -> str:
    """A value as shown in a table: ints with thousands separators, floats by `spec`, None a dash."""
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) and spec == ".4f":
        return f"{value:,}"
    if isinstance(value, int | float):
        return "nan" if math.isnan(value) else format(value, spec)
    return escape(value)


def p_value(value: Any) -> str:
    """A p-value: tiny ones in scientific notation."""
    return f"{value:.1e}" if is_number(value) and 0 < value < 1e-4 else number(value)


def percent(value: Any) -> str:
    """A share as a percentage with one decimal, or a dash."""
    return f"{100 * value:.1f}%" if is_number(value) else "&ndash;"


def short(value: Any) -> str:
    """A number in at most four or so characters: 0.123, 42.5, 1.94k, 12.3M."""
    v = float(value)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}"


def interval(ci: Mapping[str, Any] | None) -> str:
    """A confidence interval `[low, high]`, or nothing without one."""
    return f"[{number(ci.get('low'))}, {number(ci.get('high'))}]" if ci else ""


def when(value: Any) -> str:
    """An ISO time as `YYYY-MM-DD HH:MM` (in UTC when it has a zone), or the text as it came."""
    try:
        moment = datetime.fromisoformat(str(value))
        return (moment.astimezone(UTC) if moment.tzinfo else moment).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return "" if value is None else str(value)


def badge(level: str, text: str | None = None) -> str:
    """A coloured label; the report's style colours each `level`."""
    return f"<span class='badge {escape(level)}'>{escape(text or level)}</span>"


def figure(title: str, body: str) -> str:
    """A chart or table with its caption."""
    return f"<figure><figcaption>{escape(title)}</figcaption>{body}</figure>"


def svg_open(w: int, h: int) -> str:
    """The opening tag of an inline SVG chart `w` by `h` pixels that scales down with the page."""
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {w} {h}' width='{w}' height='{h}' role='img'>"
    )


def tick_label(x: float, y: float, text: str) -> str:
    """A category's label under an axis, turned so long ones fit."""
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' font-size='9' text-anchor='end' "
        f"transform='rotate(-40 {x:.1f} {y:.1f})'>{escape(text)}</text>"
    )


def ticks(lo: float, hi: float) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) that cover [lo, hi]."""
    raw = (hi - lo) / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    first = math.floor(lo / step + 1e-9)
    count = math.ceil(hi / step - 1e-9) - first
    return [round((first + k) * step, 12) for k in range(count + 1)]


def runs(values: Sequence[Any]) -> list[list[tuple[int, Any]]]:
    """The stretches of consecutive positions that have a value (None is a gap)."""
    out: list[list[tuple[int, Any]]] = []
    for i, v in enumerate(values):
        if v is None:
            continue
        if out and out[-1][-1][0] == i - 1:
            out[-1].append((i, v))
        else:
            out.append([(i, v)])
    return out
