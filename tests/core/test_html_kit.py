"""The HTML report kit: numbers, escaping, the embedded JSON, and the charts' scaffolding."""

from __future__ import annotations

import json
import re

from shipyard.core.html_kit import document, json_script, number, percent, runs, short, ticks, when


def test_numbers_are_written_one_way() -> None:
    assert number(1234) == "1,234" and number(0.5) == "0.5000" and number(None) == "&ndash;"
    assert number(float("nan")) == "nan" and number(2.5, ".1f") == "2.5" and number("<b>") == "&lt;b&gt;"
    assert percent(0.125) == "12.5%" and percent(None) == "&ndash;"
    assert short(1940) == "1.94k" and short(0.1234) == "0.123"
    assert when("2026-11-24T19:48:12+01:00") == "2026-11-24 18:48" and when("soon") == "soon"


def test_ticks_are_round_and_cover_the_range() -> None:
    assert ticks(0.0, 1.0) == [0.0, 0.25, 0.5, 0.75, 1.0]
    steps = ticks(0.13, 0.87)
    assert steps[0] <= 0.13 and steps[-1] >= 0.87


def test_runs_skip_the_gaps() -> None:
    assert runs([1, None, 2, 3, None]) == [[(0, 1)], [(2, 2), (3, 3)]]


def test_embedded_json_cannot_close_its_tag_and_reads_back() -> None:
    block = json_script("x", {"name": "</script><b>", "v": float("nan")})
    assert "</script><b>" not in block.removesuffix("</script>")
    payload = re.search(r">(.*)</script>$", block)
    assert payload and json.loads(payload.group(1)) == {"name": "</script><b>", "v": None}


def test_a_document_has_the_base_style_and_escapes_its_title() -> None:
    page = document("Report of <x>", ".extra{}", ["<p>body</p>"])
    assert page.startswith("<!doctype html>") and page.endswith("</body></html>")
    assert "<h1>Report of &lt;x&gt;</h1>" in page and ".extra{}" in page and "<p>body</p>" in page
