"""Attribution charts as SVG: well-formed, bars largest first, dots coloured low blue to high red,
a colour per category, grey where missing or hidden, and a note instead of an empty chart."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from shipyard.core.attribution_charts import (
    CATEGORY_COLORS,
    MISSING_COLOR,
    beeswarm,
    importance_bars,
    value_color,
)

SVG = "{http://www.w3.org/2000/svg}"


def parsed(html: str) -> tuple[ET.Element, str]:
    """The chart's SVG, parsed (it must be well-formed XML), and what follows it (the legend)."""
    end = html.index("</svg>") + len("</svg>")
    return ET.fromstring(html[:end]), html[end:]


def circles(svg: ET.Element) -> list[ET.Element]:
    return list(svg.iter(f"{SVG}circle"))


def title(element: ET.Element) -> str:
    found = element.find(f"{SVG}title")
    assert found is not None and found.text is not None
    return found.text


def test_value_colours_run_from_blue_to_red_and_grey_for_missing() -> None:
    assert value_color(0) == "#008aff"
    assert value_color(1.0) == "#ff0052"
    assert value_color(0.5) == "#8045a8"  # half way, rounded
    assert value_color(-3) == value_color(0) and value_color(7) == value_color(1)  # clamped
    for missing in (None, "high", float("nan")):
        assert value_color(missing) == MISSING_COLOR


def test_importance_bars_are_well_formed_and_the_largest_is_on_top_and_longest() -> None:
    html = importance_bars(
        {"age": 0.2, "income <&> 'x'": 0.9, "country": 0.0, "tenure": 0.45}, color="#123456"
    )
    svg, rest = parsed(html)
    assert rest == ""
    rects = list(svg.iter(f"{SVG}rect"))
    names = [title(r).split(":")[0] for r in rects]
    assert names == ["income <&> 'x'", "tenure", "age", "country"]
    widths = [float(r.attrib["width"]) for r in rects]
    ys = [float(r.attrib["y"]) for r in rects]
    assert widths == sorted(widths, reverse=True) and widths[-1] == 0.0
    assert ys == sorted(ys)
    assert widths[1] == pytest.approx(widths[0] * 0.45 / 0.9, abs=0.1)
    assert {r.attrib["fill"] for r in rects} == {"#123456"}
    assert int(svg.attrib["width"]) == 520


def test_importance_bars_of_only_zeros_and_of_nothing() -> None:
    svg, _ = parsed(importance_bars({"a": 0.0, "b": 0.0}, w=300))
    assert [float(r.attrib["width"]) for r in svg.iter(f"{SVG}rect")] == [0.0, 0.0]
    assert importance_bars({}) == "<p class='muted'>no features</p>"


def feature(name: str, kind: str, attributions: list[Any], colors: list[Any], **more: Any) -> dict[str, Any]:
    return {"name": name, "kind": kind, "attributions": attributions, "colors": colors, **more}


def test_a_beeswarm_has_a_row_of_dots_per_feature_coloured_by_value() -> None:
    html = beeswarm(
        [
            feature("age", "numeric", [0.5, -0.25, 0.1, None], [1.0, 0.0, None, 0.5]),
            feature("country", "categorical", [0.2, -0.1, 0.3], [0, 1, 12], categories=["DE", "FR"]),
            feature("email", "hidden", [0.05], [0.7]),
        ],
        xlabel="SHAP value <log-odds>",
    )
    svg, legend = parsed(html)
    dots = circles(svg)
    assert len(dots) == 3 + 3 + 1  # a missing attribution has no dot
    age, country, email = dots[:3], dots[3:6], dots[6:]
    assert [d.attrib["fill"] for d in age] == [value_color(1.0), value_color(0.0), MISSING_COLOR]
    assert [d.attrib["fill"] for d in country] == [
        CATEGORY_COLORS[0],
        CATEGORY_COLORS[1],
        CATEGORY_COLORS[-1],
    ]
    assert email[0].attrib["fill"] == MISSING_COLOR  # a hidden (pii) value is never coloured
    assert [title(d) for d in country] == ["country = DE: 0.2", "country = FR: -0.1", "country: 0.3"]
    # rows top to bottom in the order given; dots right of each other by attribution
    centres = [{float(d.attrib["cy"]) for d in group} for group in (age, country, email)]
    assert max(centres[0]) < min(centres[1]) and max(centres[1]) < min(centres[2])
    xs = [float(d.attrib["cx"]) for d in age]
    assert xs[1] < xs[2] < xs[0]
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "SHAP value <log-odds>" in texts and {"age", "country", "email"} <= set(texts)
    assert "low" in legend and "high" in legend
    assert "<b>country</b>" in legend and "DE" in legend and "<b>age</b>" not in legend


def test_dots_at_the_same_place_pile_up_within_their_row() -> None:
    many = feature("x", "numeric", [0.3] * 40, [0.5] * 40)
    svg, _ = parsed(beeswarm([many, feature("y", "numeric", [0.0], [0.5])]))
    dots = circles(svg)[:40]
    ys = [float(d.attrib["cy"]) for d in dots]
    assert len(set(ys)) > 5  # spread out, not drawn on top of each other
    assert max(ys) - min(ys) <= 34  # and kept within the feature's row
    assert {d.attrib["cx"] for d in dots} == {dots[0].attrib["cx"]}


def test_a_beeswarm_of_one_value_and_of_nothing() -> None:
    svg, _ = parsed(beeswarm([feature("x", "numeric", [0.0, 0.0], [0.0, 1.0])]))
    assert len(circles(svg)) == 2
    assert beeswarm([]) == "<p class='muted'>no attributions</p>"
    assert beeswarm([feature("x", "numeric", [None, "n/a"], [])]) == "<p class='muted'>no attributions</p>"
