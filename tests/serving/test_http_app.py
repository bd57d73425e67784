"""Our REST API, the operations routes and the error table, against a real server."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from servers import ServerProcess, credit_row
from shipyard import Registry, Settings


def predict(server: ServerProcess, body: Any, **kwargs: Any) -> Any:
    return server.http.post("/v1/models/credit/predict", json=body, **kwargs)


def test_rows_are_answered_with_labels_probabilities_version_and_request_id(
    credit_server: ServerProcess,
) -> None:
    rows = [credit_row(), credit_row(age=23, employment="unemployed", debt_ratio=0.9)]
    response = predict(credit_server, {"instances": rows})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "credit"
    assert body["version"] == 1
    assert len(body["request_id"]) >= 16
    assert response.headers["x-request-id"] == body["request_id"]
    assert body["predictions"] == [int(p) for p in body["predictions"]]
    assert len(body["probabilities"]) == 2
    assert set(body["probabilities"][0]) == {"0", "1"}
    assert sum(body["probabilities"][0].values()) == pytest.approx(1.0)


def test_answers_equal_the_in_process_prediction(credit_server: ServerProcess, credit_home: Any) -> None:
    rows = [credit_row(age=a, income=1000.0 + 90 * a) for a in range(20, 60)]
    body = predict(credit_server, {"instances": rows}).json()
    with Registry(Settings.for_home(credit_home)) as registry:
        local = registry.load("credit@production").predict(rows)
    assert body["predictions"] == local.values.tolist()
    assert [p["1"] for p in body["probabilities"]] == pytest.approx(local.probabilities[:, 1].tolist())


def test_columns_are_accepted_like_rows(credit_server: ServerProcess) -> None:
    rows = [credit_row(), credit_row(age=70)]
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    by_rows = predict(credit_server, {"instances": rows}).json()
    by_columns = predict(credit_server, {"inputs": columns}).json()
    assert by_columns["probabilities"] == by_rows["probabilities"]


def test_the_callers_request_id_is_kept(credit_server: ServerProcess) -> None:
    response = predict(credit_server, {"instances": [credit_row()]}, headers={"x-request-id": "abc-123"})
    assert response.json()["request_id"] == "abc-123"


def test_curl_default_form_content_type_is_read_as_json(credit_server: ServerProcess) -> None:
    response = credit_server.http.post(
        "/v1/models/credit/predict",
        content=orjson.dumps({"instances": [credit_row()]}),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200


def test_contract_violations_are_422_with_every_row_feature_and_reason(credit_server: ServerProcess) -> None:
    rows = [credit_row(), credit_row(age="old"), credit_row(country=None, income="x")]
    response = predict(credit_server, {"instances": rows})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "contract_violation"
    found = {(v["row"], v["feature"]) for v in error["violations"]}
    assert found == {(1, "age"), (2, "country"), (2, "income")}
    assert all(v["reason"] for v in error["violations"])
    assert "row 1" in error["message"]
    assert "'age'" in error["message"]


def test_a_missing_feature_is_named(credit_server: ServerProcess) -> None:
    row = credit_row()
    del row["employment"]
    error = predict(credit_server, {"instances": [row]}).json()["error"]
    assert "employment" in error["message"]
    assert error["violations"][0]["row"] is None


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "expected an object"),
        (b'{"rows": []}', 400, "'instances'"),
        (b'{"instances": {"age": 1}}', 400, "list of rows"),
        (b'{"instances": [1, 2]}', 400, "expected an object"),
        (b'{"inputs": {"age": [1, 2], "income": [1]}}', 400, "differ in length"),
    ],
)
def test_malformed_bodies_are_400_and_say_what_was_expected(
    credit_server: ServerProcess, content: bytes, status: int, words: str
) -> None:
    response = credit_server.http.post(
        "/v1/models/credit/predict", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert words in response.json()["error"]["message"]


def test_wrong_content_type_is_415(credit_server: ServerProcess) -> None:
    response = credit_server.http.post(
        "/v1/models/credit/predict", content=b"<xml/>", headers={"content-type": "application/xml"}
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]["message"]


def test_unknown_model_is_404_naming_the_served_ones(credit_server: ServerProcess) -> None:
    response = credit_server.http.post("/v1/models/fraud/predict", json={"instances": [credit_row()]})
    assert response.status_code == 404
    assert "credit" in response.json()["error"]["message"]


def test_too_many_rows_is_413_naming_the_limit(credit_server: ServerProcess) -> None:
    response = predict(credit_server, {"instances": [credit_row()] * 51})
    assert response.status_code == 413
    assert "at most 50" in response.json()["error"]["message"]


def test_too_large_a_body_is_413_naming_the_limit(credit_server: ServerProcess) -> None:
    response = credit_server.http.post(
        "/v1/models/credit/predict", content=b" " * 100_001, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "100000" in response.json()["error"]["message"]


def test_unknown_route_and_method_are_clear_4xx(credit_server: ServerProcess) -> None:
    assert credit_server.http.get("/nowhere").status_code == 404
    assert credit_server.http.delete("/v1/models/credit/predict").status_code == 405
    wrong = credit_server.http.get("/invocations")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")


@pytest.mark.parametrize("value", [1e308, 2**63, 10**24])
def test_an_integer_past_int64_is_a_violation_on_invocations(
    credit_server: ServerProcess, value: Any
) -> None:
    content = json.dumps({"dataframe_records": [credit_row(months_employed=value)]})
    response = credit_server.http.post(
        "/invocations", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "feature 'months_employed' of row 0" in response.json()["message"]
    assert "int64" in response.json()["message"]


def test_a_bare_nan_on_invocations_is_named_with_the_fix(credit_server: ServerProcess) -> None:
    content = json.dumps({"dataframe_records": [credit_row(income=float("nan"))]})
    response = credit_server.http.post(
        "/invocations", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "NaN is not JSON" in response.json()["message"]
    assert "send null for a missing value" in response.json()["message"]


def test_health_and_readiness(credit_server: ServerProcess) -> None:
    assert credit_server.http.get("/healthz").json() == {"status": "alive"}
    ready = credit_server.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["models"] == {"credit": 1}


def test_metrics_parse_with_prometheus_and_count_requests(credit_server: ServerProcess) -> None:
    predict(credit_server, {"instances": [credit_row()]})
    predict(credit_server, {"instances": [credit_row(age="x")]})
    text = credit_server.http.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "shipyard_requests",
        "shipyard_request_duration_seconds",
        "shipyard_adaptive_batch_rows",
        "shipyard_adaptive_batch_queue_seconds",
        "shipyard_model_call_seconds",
        "shipyard_inflight_requests",
        "shipyard_model_load_seconds",
    ):
        assert name in families, name
    statuses = {
        s.labels["status"]
        for s in families["shipyard_requests"].samples
        if s.labels.get("protocol") == "rest" and s.name == "shipyard_requests_total"
    }
    assert {"200", "422"} <= statuses
