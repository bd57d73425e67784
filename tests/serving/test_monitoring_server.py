"""Monitoring against a real server: live drift on two workers, feedback, and the same drift from the log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from servers import ServerProcess
from shipyard import Registry, Settings
from shipyard.datasets import make_credit
from shipyard.monitoring.drift import compare
from shipyard.monitoring.feedback import FeedbackStore
from shipyard.monitoring.monitor import monitor_report


def _unguarded(home: Path) -> Settings:
    return replace(Settings.for_home(home), protected_aliases=())


@pytest.fixture(scope="module")
def drifted() -> pd.DataFrame:
    """Credit applications whose incomes tripled: drift in one feature, the rest as in training."""
    frame = make_credit(600, seed=11)
    frame["income"] = (frame["income"] * 3).round(2)
    return frame


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    credit: pd.DataFrame,
    credit_pipeline: Any,
    drifted: pd.DataFrame,
) -> Iterator[tuple[ServerProcess, list[str]]]:
    """A two-worker server of `credit`, sent the drifted rows ten per request; the request ids."""
    home = tmp_path_factory.mktemp("monitoring-home")
    with Registry(_unguarded(home), actor="tester") as registry:
        registry.register(
            credit_pipeline, name="credit", train_data=credit, target="default", alias="production"
        )
    server = ServerProcess(home, ["credit@production"], "--workers", "2").wait_ready()
    features = drifted.drop(columns=["default"])
    ids = []
    try:
        for start in range(0, len(features), 10):
            rows = features.iloc[start : start + 10].to_dict(orient="records")
            rows = [
                {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in rows
            ]
            response = server.http.post("/v1/models/credit/predict", json={"instances": rows})
            assert response.status_code == 200, response.text
            ids.append(response.json()["request_id"])
        yield server, ids
    finally:
        server.terminate()


def _live(server: ServerProcess, rows: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = server.http.get("/v1/models/credit/drift").json()
        if body["drift"] is not None and body["drift"]["current_rows"] == rows:
            return body
        time.sleep(0.5)
    raise AssertionError(f"the live profile never reached {rows} rows: {body}")


def test_live_drift_merges_both_workers_and_flags_the_moved_feature(
    served: tuple[ServerProcess, list[str]],
) -> None:
    server, _ = served
    body = _live(server, 600)
    drift = body["drift"]
    assert drift["drifted_features"] == ["income"]
    levels = {c["name"]: c["level"] for c in drift["features"]}
    assert all(level != "drift" for name, level in levels.items() if name != "income")


def test_live_drift_equals_drift_computed_offline_on_the_same_rows(
    served: tuple[ServerProcess, list[str]], drifted: pd.DataFrame
) -> None:
    server, _ = served
    live = _live(server, 600)["drift"]
    with Registry(_unguarded(server.home)) as registry:
        version = registry.get("credit@production")
        loaded = registry.load(version.ref)
    assert version.profile is not None
    batch = loaded.validate(drifted.drop(columns=["default"])).batch
    offline = compare(version.profile, version.profile.profile(batch, loaded.predict_valid(batch)))
    for column in live["features"]:
        assert column["stats"]["psi"] == pytest.approx(offline.column(column["name"]).stats["psi"], rel=1e-9)


def test_metrics_carry_drift_gauges(served: tuple[ServerProcess, list[str]]) -> None:
    server, _ = served
    _live(server, 600)
    text = server.http.get("/metrics").text
    assert 'shipyard_drift_psi{deployment="",feature="income",model="credit",version="1"}' in text
    assert (
        'shipyard_drift_feature_drifted{deployment="",feature="income",model="credit",version="1"} 1.0'
        in text
    )
    assert 'shipyard_drift_share{deployment="",model="credit",version="1"}' in text
    assert 'shipyard_drift_rows{deployment="",model="credit",version="1"} 600.0' in text


def test_feedback_is_stored_and_bad_feedback_is_refused_with_the_reason(
    served: tuple[ServerProcess, list[str]], drifted: pd.DataFrame
) -> None:
    server, ids = served
    labels = drifted["default"].tolist()
    accepted = server.http.post(
        "/v1/feedback",
        json=[{"request_id": rid, "labels": labels[i * 10 : i * 10 + 10]} for i, rid in enumerate(ids)],
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"accepted": 600}
    one = server.http.post("/v1/feedback", json={"request_id": ids[0], "row": 3, "label": labels[3]})
    assert one.status_code == 202
    bad = server.http.post("/v1/feedback", json={"request_id": "", "label": 1})
    assert bad.status_code == 400
    assert "request_id must be the non-empty text" in bad.json()["error"]["message"]
    both = server.http.post("/v1/feedback", json=[{"request_id": "a", "label": 1}, {"request_id": "b"}])
    assert both.status_code == 400 and "item 1" in both.json()["error"]["message"]
    with Registry(_unguarded(server.home)) as registry:
        assert FeedbackStore(registry).count() == 601


def test_the_log_gives_the_same_drift_and_joins_the_labels(
    served: tuple[ServerProcess, list[str]], drifted: pd.DataFrame
) -> None:
    server, ids = served
    live = _live(server, 600)["drift"]
    server.http.post(
        "/v1/feedback",
        json=[
            {"request_id": rid, "labels": drifted["default"].tolist()[i * 10 : i * 10 + 10]}
            for i, rid in enumerate(ids)
        ],
    )
    deadline = time.monotonic() + 20
    with Registry(_unguarded(server.home)) as registry:
        while True:
            report = monitor_report(registry, "credit", window=timedelta(hours=1), buckets=4)
            if report.rows == 600 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert report.rows == 600 and report.requests == 60 and report.rejected == 0
    assert report.drift is not None and report.drift.drifted_features == ["income"]
    for column in live["features"]:
        assert report.drift.column(column["name"]).stats["psi"] == pytest.approx(
            column["stats"]["psi"], rel=1e-9
        )
    assert report.performance is not None and report.performance["rows"] == 600
    assert 0.0 <= report.performance["metrics"]["accuracy"] <= 1.0
    assert report.estimate is None  # every served row has its label: nothing left to estimate


def test_serving_without_profiles_has_no_drift_route(
    tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any
) -> None:
    with Registry(_unguarded(tmp_path), actor="tester") as registry:
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    server = ServerProcess(tmp_path, ["credit"], "--no-profile").wait_ready()
    try:
        response = server.http.get("/v1/models/credit/drift")
        assert response.status_code == 404 and "--no-profile" in response.json()["error"]["message"]
        assert "shipyard_drift_psi" not in server.http.get("/metrics").text
    finally:
        server.terminate()
