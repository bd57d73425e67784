"""Against a real server: labels are checked against its log and model, and live drift waits for rows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from servers import ServerProcess
from shipyard import Registry, Settings
from shipyard.datasets import make_credit
from shipyard.monitoring.feedback import FeedbackStore

PLACEHOLDER = "649efc5abf3a000000000001"  # the README's example id


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, credit: pd.DataFrame, credit_pipeline: Any
) -> Iterator[tuple[ServerProcess, list[str]]]:
    """A server of `credit` sent four one-row requests (fewer than drift's 100 rows); their ids."""
    home = tmp_path_factory.mktemp("feedback-home")
    with Registry(replace(Settings.for_home(home), protected_aliases=()), actor="tester") as registry:
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    server = ServerProcess(home, ["credit"]).wait_ready()
    rows = make_credit(4, seed=8).drop(columns=["default"]).to_dict(orient="records")
    ids = []
    try:
        for row in rows:
            response = server.http.post("/v1/models/credit/predict", json={"instances": [_json(row)]})
            assert response.status_code == 200, response.text
            ids.append(response.json()["request_id"])
        yield server, ids
    finally:
        server.terminate()


def _json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}


def _labels(home: Path) -> int:
    with Registry(Settings.for_home(home)) as registry:
        return FeedbackStore(registry).count()


def test_an_id_no_request_had_is_refused_naming_it(served: tuple[ServerProcess, list[str]]) -> None:
    server, _ = served
    before = _labels(server.home)
    response = server.http.post("/v1/feedback", json={"request_id": PLACEHOLDER, "label": 1})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert PLACEHOLDER in error["message"] and "no request with this id" in error["message"]
    assert error["refused"] == [
        {
            "where": "the body",
            "request_id": PLACEHOLDER,
            "row": 0,
            "label": 1,
            "reason": error["refused"][0]["reason"],
            "expected": None,
            "kind": "unknown_request",
        }
    ]
    assert _labels(server.home) == before


def test_a_label_that_is_not_a_class_is_refused_with_the_classes_and_nothing_is_stored(
    served: tuple[ServerProcess, list[str]],
) -> None:
    server, ids = served
    before = _labels(server.home)
    response = server.http.post(
        "/v1/feedback", json=[{"request_id": ids[0], "label": 1}, {"request_id": ids[1], "label": "maybe"}]
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "1 of 2 label(s) from the body cannot be used, so none were stored" in error["message"]
    assert f"item 1: request {ids[1]!r} row 0, label 'maybe'" in error["message"]
    [refused] = error["refused"]
    assert refused["where"] == "item 1" and refused["expected"] == [0, 1] and refused["kind"] == "label"
    assert _labels(server.home) == before


def test_a_label_for_a_request_just_answered_is_accepted_as_the_class(
    served: tuple[ServerProcess, list[str]],
) -> None:
    server, _ = served
    row = _json(make_credit(1, seed=9).drop(columns=["default"]).iloc[0].to_dict())
    answer = server.http.post(
        "/v1/models/credit/predict", json={"instances": [row]}, headers={"x-request-id": "mine-1"}
    )
    assert answer.status_code == 200 and answer.json()["request_id"] == "mine-1"
    response = server.http.post("/v1/feedback", json={"request_id": "mine-1", "label": "1"})
    assert response.status_code == 202, response.text
    with Registry(Settings.for_home(server.home)) as registry:
        stored = FeedbackStore(registry).labels(request_ids=["mine-1"]).to_pylist()
    assert [x["label"] for x in stored] == ["1"]  # JSON of the class 1, not of the text "1"


def test_live_drift_gauges_wait_for_enough_rows_as_the_drift_route_does(
    served: tuple[ServerProcess, list[str]],
) -> None:
    server, _ = served
    deadline = time.monotonic() + 30
    while True:
        body = server.http.get("/v1/models/credit/drift").json()
        if body["drift"] is not None and body["drift"]["current_rows"] >= 4:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.5)
    assert {c["level"] for c in body["drift"]["features"]} == {"insufficient"}
    text = server.http.get("/metrics").text
    assert 'shipyard_drift_rows{deployment="",model="credit",version="1"}' in text
    for gauge in ("psi", "jensen_shannon", "feature_drifted", "output_psi", "share", "dataset"):
        assert f"shipyard_drift_{gauge}{{" not in text, gauge
