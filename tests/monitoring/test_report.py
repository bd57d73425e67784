"""The monitoring report: self-contained HTML, every section in order, escaped text, gaps for no data."""

from __future__ import annotations

import copy
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.core.batch import Batch, Predictions
from shipyard.core.profile import Profile
from shipyard.monitoring.drift import compare
from shipyard.monitoring.report import render_report, write_report

SECTIONS = [
    "Data drift",
    "Prediction drift",
    "Performance over time",
    "Latency and errors over time",
    "Timeline",
]
START = "2026-11-24T19:48:12+00:00"


class _Collector(HTMLParser):
    """Tags, external references, the embedded JSON and the figures' captions of a report."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.external: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.payload = ""
        self.headings: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.external += [f"{tag} {k}={v}" for k, v in attrs if k in ("src", "href", "action")]
        if tag == "script":
            self.scripts.append(dict(attrs))
        self._in = tag

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.payload += data
        elif self._in == "h2":
            self.headings.append(data.strip())

    def handle_endtag(self, tag: str) -> None:
        self._in = None


def parse(text: str) -> _Collector:
    collector = _Collector()
    collector.feed(text)
    return collector


def numeric(name: str, level: str, psi: float, shift: float, *, exact: bool = False) -> dict[str, Any]:
    """A numeric column's drift as `ColumnDrift.to_dict()` gives it (10 quantile bins)."""
    current = [0.1 - shift / 9] * 9 + [0.1 + shift]
    return {
        "name": name,
        "role": "feature",
        "kind": "numeric",
        "level": level,
        "drifted": level == "drift",
        "reasons": [f"PSI {psi:.3f} >= 0.25"] if level == "drift" else ["no significant difference"],
        "reference_rows": 3000,
        "current_rows": 2000,
        "stats": {
            "missing_reference": 0.0273,
            "missing_current": 0.029,
            "psi": psi,
            "js": 0.4226,
            "ks": 0.4885,
            "ks_upper": 0.4885 if exact else 0.4985,
            "ks_p": 4.97e-257,
            "ks_exact": exact,
            "wasserstein": 6713.1,
            "wasserstein_norm": 3.0012,
        },
        "bins": {"edges": [1936.4 + 500 * i for i in range(9)], "reference": [0.1] * 10, "current": current},
        "unseen": {},
        "importance": None,
        "severity": psi * 10,
    }


def categorical(name: str, unseen: dict[str, int] | None = None) -> dict[str, Any]:
    """A categorical column's drift, with the unseen categories appended to the labels."""
    unseen = unseen or {}
    labels = ["ES", "FR", "DE", "NL", "IT", *unseen]
    return {
        "name": name,
        "role": "feature",
        "kind": "categorical",
        "level": "drift" if unseen else "ok",
        "drifted": bool(unseen),
        "reasons": ["2.0% of values in categories never seen in the reference (ZZ)"] if unseen else [],
        "reference_rows": 3000,
        "current_rows": 2000,
        "stats": {
            "missing_reference": 0.0,
            "missing_current": 0.0,
            "js": 0.0322,
            "psi": 0.0058,
            "chi2": 6.89,
            "chi2_p": 0.1414,
            "unseen_share": 0.02 if unseen else 0.0,
        },
        "bins": {
            "labels": labels,
            "reference": [0.2] * 5 + [0.0] * len(unseen),
            "current": [0.196] * 5 + [0.02] * len(unseen),
        },
        "unseen": unseen,
        "importance": None,
        "severity": 2.0 if unseen else 0.32,
    }


def bucket(i: int, *, requests: int = 0, accuracy: float | None = None) -> dict[str, Any]:
    """One timeline entry; a bucket without requests has None for everything measured."""
    entry: dict[str, Any] = {
        "start": f"2026-11-24T{19 + i // 4:02d}:{(i % 4) * 15:02d}:00+00:00",
        "end": f"2026-11-24T{19 + (i + 1) // 4:02d}:{((i + 1) % 4) * 15:02d}:00+00:00",
        "requests": requests,
        "rows": requests,
        "errors": requests // 50,
        "error_rate": (requests // 50) / requests if requests else None,
        "latency_ms": {"p50": 5.0 + i, "p95": 9.0 + i, "p99": 14.0 + i} if requests else None,
    }
    if requests:
        entry.update(drift_share=0.25, drifted_features=["income"], max_psi=1.5 + i)
    if accuracy is not None:
        entry["performance"] = {
            "rows": requests // 2,
            "metrics": {"accuracy": accuracy, "f1_macro": accuracy - 0.2},
            "ci": {"accuracy": {"low": accuracy - 0.05, "high": accuracy + 0.05, "level": 0.95}},
        }
        entry["estimated_accuracy"] = 0.9
    return entry


def sample() -> dict[str, Any]:
    """A classifier's `MonitorReport.to_dict()`: drift on income, DDM and ADWIN in bucket 5."""
    timeline = [bucket(0), bucket(1), bucket(2)]
    timeline += [bucket(i, requests=r, accuracy=a) for i, r, a in ((3, 50, 0.68), (4, 900, 0.79))]
    timeline += [bucket(5, requests=900, accuracy=0.22), bucket(6, requests=150, accuracy=0.28), bucket(7)]
    features = [
        numeric("income", "drift", 1.0776, 0.45),
        categorical("country", {"ZZ": 40}),
        numeric("age", "ok", 0.0072, 0.0, exact=True),
        categorical("employment"),
    ]
    prediction = categorical("prediction") | {"role": "output", "reasons": ["no significant difference"]}
    return {
        "ref": "credit:1",
        "name": "credit",
        "version": 1,
        "task": "classification",
        "since": START,
        "until": "2026-11-24T21:48:12+00:00",
        "requests": 2000,
        "rows": 2000,
        "rejected": 36,
        "drift": {
            "dataset_drift": True,
            "share": 0.5,
            "weighted": False,
            "drifted_features": ["income", "country"],
            "prediction_drift": False,
            "reference_rows": 3000,
            "current_rows": 2000,
            "features": features,
            "outputs": [prediction],
            "settings": {"defaults": {"psi": [0.1, 0.25], "js": 0.1, "min_rows": 100}, "dataset_share": 0.5},
        },
        "performance": {
            "rows": 1000,
            "metrics": {"accuracy": 0.491, "f1_macro": 0.3551},
            "ci": {"accuracy": {"low": 0.4599, "high": 0.521, "level": 0.95, "resamples": 200}},
            "baseline": {"accuracy": 0.8125, "f1_macro": 0.61},
            "evaluation_id": 7,
            "change": {"accuracy": 0.491 - 0.8125, "f1_macro": 0.3551 - 0.61},
            "served_rows": 2000,
            "labelled_share": 0.5,
        },
        "detections": [
            {
                "detector": "DDM",
                "kind": "drift",
                "index": 525,
                "time": "2026-11-24T21:05:42+00:00",
                "bucket": 5,
            },
            {
                "detector": "ADWIN",
                "kind": "drift",
                "index": 543,
                "time": "2026-11-24T21:05:42+00:00",
                "bucket": 5,
            },
        ],
        "estimate": {"accuracy": 0.9226, "rows": 1000, "method": "mean confidence", "estimate": True},
        "timeline": timeline,
        "versions": {"1": 2000},
        "seconds": 0.17,
    }


def figure(text: str, caption: str) -> str:
    """The markup of the figure whose caption starts with `caption`."""
    found = re.search(r"<figure><figcaption>" + re.escape(caption) + r"(.*?)</figure>", text, re.S)
    assert found, caption
    return found.group(1)


def test_sections_come_in_order_with_the_summary_first() -> None:
    text = render_report(sample())
    parsed = parse(text)
    assert parsed.headings == SECTIONS
    summary = text[text.index("<h1>") : text.index("<h2>")]
    assert "Monitoring of credit:1" in summary
    assert "2026-11-24 19:48 &rarr; 2026-11-24 21:48 UTC" in summary
    assert "2,000" in summary and "36 (1.8%)" in summary  # requests, rejected and their share
    assert "DRIFT</span> 50.0% of features drifted (unweighted): income, country" in summary
    assert "<th>prediction drift</th><td class='text'><span class='badge ok'>no</span>" in summary
    assert "2 (DDM 1, ADWIN 1)" in summary
    assert "accuracy 0.4910 <span class='fail'>-0.3215</span>" in summary  # worse than the baseline
    assert "(baseline 0.8125)" in summary


def test_drift_table_keeps_the_data_order_and_shows_every_statistic() -> None:
    text = render_report(sample())
    table = text[text.index("<h2>Data drift") : text.index("<h2>Prediction drift")]
    rows = re.findall(r"<tr><td>([^<]*)</td>", table)
    assert rows == ["income", "country", "age", "employment"]  # by severity, as given
    assert "<span class='badge drift'>drift</span>" in table
    assert "[0.4885, 0.4985]" in table  # KS on the grid: the interval
    assert "<td>0.4885</td>" in table  # exact KS (age): one number
    assert "<td>3.0012</td>" in table and "<td>1.0776</td>" in table  # Wasserstein / std, PSI
    assert "<td>0.1414</td>" in table  # chi-square p
    assert "2.7% &rarr; 2.9%" in table  # missing share before and after
    assert "2.0%: ZZ (40)" in table  # unseen categories with their counts
    assert "PSI 1.078 &gt;= 0.25" in table


def test_every_column_has_a_histogram_of_paired_bars() -> None:
    text = render_report(sample())
    income = figure(text, "income")
    assert income.count("<rect") == 20  # ten bins, reference and current
    assert ">2.44k</text>" in income  # bins labelled by their edges
    country = figure(text, "country")
    assert country.count("<rect") == 12 and ">ZZ</text>" in country  # the unseen category too
    assert "ZZ: reference 0.0%, current 2.0%" in country
    prediction = figure(text, "prediction")
    assert prediction.count("<rect") == 10
    outputs = text[text.index("<h2>Prediction drift") : text.index("<h2>Performance")]
    assert "<tr><td>prediction</td>" in outputs


def test_many_categories_are_capped_with_the_rest_summed() -> None:
    report = sample()
    many = categorical("city")
    many["bins"] = {
        "labels": [f"c{i}" for i in range(30)],
        "reference": [1 / 30] * 30,
        "current": [0.5, *([0.5 / 29] * 29)],
    }
    report["drift"]["features"] = [many]
    city = figure(render_report(report), "city")
    assert city.count("<rect") == 40 and ">other (11)</text>" in city


def test_performance_chart_has_the_band_baseline_estimate_and_detector_markers() -> None:
    text = render_report(sample())
    section = text[text.index("<h2>Performance") : text.index("<h2>Latency")]
    assert (
        "<td>accuracy</td><td>0.4910</td><td>[0.4599, 0.5210]</td><td>0.8125</td>"
        "<td><span class='fail'>-0.3215</span></td>" in section
    )
    assert "<td>DDM</td><td class='text'>drift</td><td class='when'>2026-11-24 21:05</td>" in section
    chart = figure(section, "accuracy per bucket")
    assert ">baseline 0.812</text>" in chart and "stroke-dasharray='6 4'" in chart
    assert ">estimate</text>" in chart and "stroke-dasharray='2 3'" in chart
    assert chart.count("<polygon") == 1  # the 95% interval over buckets 3 to 6
    assert ">DDM, ADWIN</text>" in chart  # one marker at bucket 5 for both detectors


def test_empty_buckets_are_gaps_not_zeros() -> None:
    report = sample()
    report["timeline"][4] = bucket(4)  # no traffic between two buckets that have some
    text = render_report(report)
    chart = figure(text, "accuracy per bucket")
    accuracy = re.findall(r"<polyline fill='none' stroke='#1f6feb'[^>]*>", chart)
    assert len(accuracy) == 2  # bucket 3 alone, then buckets 5 and 6
    assert chart.count("<polygon") == 2
    latency = figure(text, "latency")
    assert latency.count("<polyline") == 6  # p50, p95, p99 each broken at bucket 4
    timeline = text[text.index("<h2>Timeline") :]
    row = re.search(r"<tr><td>4</td>.*?</tr>", timeline)
    assert row
    assert row.group(0).count("&ndash;") == 9 and "0.0" not in row.group(0)


def test_nothing_points_outside_the_file() -> None:
    text = render_report(sample())
    parsed = parse(text)
    assert parsed.external == []
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg['\"])", text)
    assert parsed.scripts == [{"type": "application/json", "id": "shipyard-monitor"}]
    assert "<link" not in text and "@import" not in text and "url(" not in text


def test_hostile_feature_name_is_escaped_in_the_page_and_in_the_embedded_data() -> None:
    report = sample()
    hostile = "</script><b>x"
    report["drift"]["features"][0]["name"] = hostile
    report["drift"]["drifted_features"] = [hostile]
    report["timeline"][5]["drifted_features"] = [hostile]
    report["drift"]["features"][1]["unseen"] = {"<img src=x>": 3}
    text = render_report(report)
    assert "<b>x" not in text and "<img" not in text
    assert "&lt;/script&gt;&lt;b&gt;x" in text
    assert text.count("</script>") == 1  # only the embedded block's own end
    parsed = parse(text)
    assert "b" not in parsed.tags and "img" not in parsed.tags
    assert "<" not in parsed.payload and ">" not in parsed.payload and "&" not in parsed.payload
    assert json.loads(parsed.payload) == report  # the \u003c escapes are JSON's own: nothing to undo


def test_a_window_without_reference_labels_or_traffic_renders() -> None:
    report = {
        "ref": "credit:2",
        "name": "credit",
        "version": 2,
        "task": "classification",
        "since": START,
        "until": "2026-11-24T21:48:12+00:00",
        "requests": 0,
        "rows": 0,
        "rejected": 0,
        "drift": None,
        "performance": None,
        "detections": [],
        "estimate": None,
        "timeline": [bucket(i) for i in range(4)],
        "versions": {},
        "seconds": 0.01,
    }
    text = render_report(report)
    assert parse(text).headings == SECTIONS
    assert "0 <span class='muted'>(no traffic)</span>" in text
    assert text.count("no reference profile") == 3  # summary, data drift, prediction drift
    assert "no labels yet: performance is unknown" in text
    assert "no labels have arrived for this window yet" in text
    assert text.count("no data in this window") == 2  # latency, error rate
    assert "<svg" not in text
    visible = re.sub(r"<script.*?</script>", "", text, flags=re.S)
    assert "None" not in visible and "nan" not in visible
    assert json.loads(parse(text).payload) == report


def test_a_window_with_estimates_but_no_labels_charts_the_estimate_alone() -> None:
    report = sample()
    report["performance"], report["detections"] = None, []
    for entry in report["timeline"]:
        entry.pop("performance", None)
    text = render_report(report)
    assert "no labels have arrived for this window yet" in text
    chart = figure(text, "accuracy per bucket")
    assert ">estimate</text>" in chart and "<polygon" not in chart and "baseline" not in chart


def test_a_regressor_charts_mae_and_sparse_dicts_render() -> None:
    report = sample()
    report["task"], report["estimate"] = "regression", None
    report["performance"] = {"rows": 10, "metrics": {"mae": 1.5}, "ci": {}, "baseline": {}, "change": {}}
    for entry in report["timeline"]:
        if "performance" in entry:
            entry["performance"] = {"rows": 5, "metrics": {"mae": 1.25}, "ci": {}}
            del entry["estimated_accuracy"]
    report["drift"]["outputs"] = []
    report["drift"]["features"][0]["bins"] = {"edges": [1.0], "reference": [], "current": []}
    text = render_report(report)
    chart = figure(text, "mae per bucket")
    assert "estimate" not in chart and "<polygon" not in chart
    assert "no evaluation baseline to compare" in text
    assert "no model outputs were compared" in text
    assert "no histogram: no rows on one side" in text


def test_a_real_drift_report_renders_with_its_outputs() -> None:
    rng = np.random.default_rng(0)
    n = 600
    reference = Batch.from_columns(
        {"income": rng.normal(4000, 500, n), "country": rng.choice(np.array(["ES", "FR"]), n)}
    )
    current = Batch.from_columns(
        {"income": rng.normal(6000, 500, n), "country": rng.choice(np.array(["ES", "FR", "QQ"]), n)}
    )
    before = Predictions(task="classification", values=rng.choice(np.array(["no", "yes"]), n))
    after = Predictions(task="classification", values=np.array(["yes"] * n))
    profile = Profile.build(reference, predictions=before)
    drift = compare(profile, profile.profile(current, after)).to_dict()
    report = sample() | {"drift": drift}
    text = render_report(report)
    assert "<tr><td>income</td>" in text and "<tr><td>prediction</td>" in text
    assert "QQ (" in text  # the unseen category
    assert "<th>prediction drift</th><td class='text'><span class='badge drift'>yes</span>" in text
    assert json.loads(parse(text).payload) == json.loads(json.dumps(report))


def test_write_report_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "monitor.html"
    first = write_report(sample(), target)
    assert first == target and target.read_text(encoding="utf-8") == render_report(sample())
    changed = copy.deepcopy(sample()) | {"ref": "credit:9"}
    write_report(changed, os.fspath(target))
    assert os.listdir(target.parent) == ["monitor.html"]  # no temporary file left behind
    assert "Monitoring of credit:9" in target.read_text(encoding="utf-8")
    assert target.stat().st_mode & 0o777 != 0o600  # a report is readable like any new file
