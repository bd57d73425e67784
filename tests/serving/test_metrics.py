"""Serving metrics: label values bounded by what the server serves, whatever callers ask for, and
the figures of several workers combined the way each one means."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from servers import ServerProcess, credit_row
from shipyard.serving import oip_v2_pb2 as pb
from shipyard.serving.metrics import UNKNOWN, Metrics

ASKED = 100  # distinct unknown names per route: a series each would add about 500 KB


def test_requests_for_models_not_served_are_counted_under_one_label_value() -> None:
    metrics = Metrics()
    metrics.track("credit", "3")
    for name in ("nope", "credit-2", "x" * 128):
        metrics.inc("shipyard_requests", (name, "", "rest", "404"))
        metrics.observe("shipyard_request_duration_seconds", (name, "rest"), 0.001)
    metrics.inc("shipyard_requests", ("credit", "9", "oip-rest", "404"))
    metrics.inc("shipyard_requests", ("credit", "3", "rest", "200"))
    metrics.inc("shipyard_requests", ("", "", "http", "404"))
    assert metrics.counters["shipyard_requests"] == {
        (UNKNOWN, "", "rest", "404"): 3,
        ("credit", UNKNOWN, "oip-rest", "404"): 1,
        ("credit", "3", "rest", "200"): 1,
        ("", "", "http", "404"): 1,
    }
    assert list(metrics.histograms["shipyard_request_duration_seconds"]) == [(UNKNOWN, "rest")]


@pytest.fixture(scope="module")
def metrics_size(credit_server: ServerProcess) -> int:
    """The size of `/metrics` once every route has answered one good request."""
    http = credit_server.http
    assert http.post("/v1/models/credit/predict", json={"instances": [credit_row()]}).status_code == 200
    assert http.post("/invocations", json={"dataframe_records": [credit_row()]}).status_code == 200
    return len(http.get("/metrics").content)


def test_unknown_models_paths_and_methods_leave_metrics_bounded(
    credit_server: ServerProcess, metrics_size: int
) -> None:
    http = credit_server.http
    with grpc.insecure_channel(credit_server.grpc_target) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        for i in range(ASKED):
            name = f"nope-{i}"
            assert http.post(f"/v1/models/{name}/predict", json={"instances": [{}]}).status_code == 404
            assert http.post(f"/v2/models/{name}/infer", json={"inputs": []}).status_code == 404
            assert (
                http.post(f"/v2/models/credit/versions/{i + 7}/infer", json={"inputs": []}).status_code == 404
            )
            assert http.get(f"/v2/models/{name}/ready").status_code == 404
            assert http.post(f"/{name}", json={}).status_code in (404, 405)
            for method in ("PUT", "DELETE", "PATCH"):
                assert http.request(method, f"/v1/models/{name}/predict").status_code in (404, 405)
            with pytest.raises(grpc.RpcError) as caught:
                infer(pb.ModelInferRequest(model_name=name), timeout=10)
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # A gRPC call is counted as its answer leaves, so the last one may show a moment after the
    # client has it: scrape again until it does (or for five seconds).
    deadline = time.monotonic() + 5
    while True:
        text = http.get("/metrics").text
        counted = {
            (s.labels["model"], s.labels["version"], s.labels["protocol"], s.labels["status"]): s.value
            for family in text_string_to_metric_families(text)
            if family.name == "shipyard_requests"
            for s in family.samples
        }
        if counted.get((UNKNOWN, "", "oip-grpc", "NOT_FOUND")) == ASKED or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(text.encode()) < metrics_size + 10_000, "every unknown name grew /metrics"
    assert "nope-" not in text
    assert counted[(UNKNOWN, "", "rest", "404")] == ASKED
    assert counted[(UNKNOWN, "", "oip-rest", "404")] == ASKED
    assert counted[(UNKNOWN, "", "oip-grpc", "NOT_FOUND")] == ASKED


def test_workers_figures_are_summed_but_readiness_and_generation_show_the_laggard(tmp_path: Path) -> None:
    first, second = Metrics(tmp_path, worker=0), Metrics(tmp_path, worker=1)
    for metrics, ready, generation, load in ((first, 1.0, 3.0, 0.5), (second, 0.0, 2.0, 0.8)):
        metrics.inc("shipyard_predictions", ("api", "2"), 10)
        metrics.set("shipyard_model_ready", ("api", "2"), ready)
        metrics.set("shipyard_deployment_generation", ("api",), generation)
        metrics.set("shipyard_model_load_seconds", ("api", "2"), load)
        metrics.set("shipyard_arm_weight", ("api", "2", "canary"), 25.0)
        metrics.set_total("shipyard_events_dropped", (), 4.0)
        metrics.inflight = 3
        metrics.publish()
    merged = first.merged()
    assert merged["counters"]["shipyard_predictions"][("api", "2")] == 20
    assert merged["counters"]["shipyard_events_dropped"][()] == 8
    assert merged["gauges"]["shipyard_inflight_requests"][()] == 6
    assert merged["gauges"]["shipyard_model_ready"][("api", "2")] == 0.0  # not ready on every worker
    assert merged["gauges"]["shipyard_deployment_generation"][("api",)] == 2.0
    assert merged["gauges"]["shipyard_model_load_seconds"][("api", "2")] == 0.8
    assert merged["gauges"]["shipyard_arm_weight"][("api", "2", "canary")] == 25.0
    text = first.render().decode()
    assert "shipyard_events_dropped_total 8.0" in text
    assert 'shipyard_deployment_generation{model="api"} 2.0' in text
