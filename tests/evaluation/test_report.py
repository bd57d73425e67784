"""The HTML report: self-contained, every section present, the numbers embedded as JSON."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

from shipyard import Policy, Registry, check_gates, evaluate
from shipyard.evaluation.report import render_report, report_json, write_report


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.external: list[str] = []
        self.payload = ""
        self._in_payload = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href") or (key == "id" and value == "shipyard-evaluation"):
                if key != "id":
                    self.external.append(f"{tag} {key}={value}")
                self._in_payload = key == "id"

    def handle_data(self, data: str) -> None:
        if self._in_payload:
            self.payload += data

    def handle_endtag(self, tag: str) -> None:
        self._in_payload = False


def test_report_is_self_contained_with_champion_side_by_side_and_gates(
    two_versions: Registry, holdout: pd.DataFrame, tmp_path: Path
) -> None:
    two_versions.set_alias("credit:1", "production", force=True, reason="set-up")
    result = evaluate(
        "credit:2",
        holdout,
        target="default",
        sensitive=["country"],
        slices=["employment"],
        resamples=20,
        registry=two_versions,
    )
    gates = check_gates(
        "credit:2", Policy.parse("rules: ['roc_auc >= champion - 0.5']"), registry=two_versions
    )
    path = write_report(tmp_path / "out" / "report.html", result, gates)
    text = path.read_text()
    parsed = _Collector()
    parsed.feed(text)
    assert parsed.external == []
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)
    headings = ("Gates", "Metrics", "Curves", "Confusion matrix", "Explanations", "Slices", "Fairness")
    for heading in (*headings, "Robustness"):
        assert f"<h2>{heading}" in text, heading
    # ROC, precision-recall, reliability; the stored importance and the SHAP summary plot
    assert parsed.tags.count("svg") == 5
    assert "credit:1" in text and "credit:2" in text  # champion beside challenger
    embedded = json.loads(parsed.payload)
    assert embedded == json.loads(json.dumps(report_json(result, gates), default=str))
    assert embedded["evaluation"]["champion"]["ref"] == "credit:1"
    assert embedded["gates"]["passed"] is True
    as_json = write_report(tmp_path / "report.json", result, gates)
    assert json.loads(as_json.read_text())["evaluation"]["metrics"] == embedded["evaluation"]["metrics"]
    assert oct(path.stat().st_mode & 0o777) != "0o600"


def test_text_from_the_data_is_escaped(two_versions: Registry, holdout: pd.DataFrame) -> None:
    evil = holdout.assign(segment=["<script>alert(1)</script>"] * len(holdout))
    result = evaluate(
        "credit:1",
        evil,
        target="default",
        slices=["segment"],
        robust=False,
        resamples=0,
        store=False,
        registry=two_versions,
    )
    text = render_report(result)
    assert "<script>alert(1)" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
