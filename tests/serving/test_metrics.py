"""Serving metrics: label values bounded by what the server serves, whatever callers ask for; one
outcome label for every protocol; a deployment's series under its model; the figures of several
workers combined the way each one means; and `promtool check metrics` clean on a real scrape."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from servers import ServerProcess, credit_row
from shipyard import Registry
from shipyard.core.refs import ModelRef
from shipyard.rollout.deployments import Arm, Deployments
from shipyard.serving import oip_v2_pb2 as pb
from shipyard.serving.exposition import render
from shipyard.serving.metrics import UNKNOWN, Metrics, outcome_of
from shipyard.serving.service import ModelService

ASKED = 100  # distinct unknown names per route: a series each would add about 500 KB
PROMTOOL = shutil.which("promtool")

Serve = Callable[..., ModelService]


def promtool_problems(text: str) -> str:
    """What `promtool check metrics` says of an exposition ("" when it is clean)."""
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "metrics"], check=False, input=text, capture_output=True, text=True, timeout=60
    )
    return "" if done.returncode == 0 else done.stdout + done.stderr


def samples(text: str, name: str) -> list[Any]:
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def test_every_status_of_either_protocol_has_one_outcome() -> None:
    assert {code.name: outcome_of(code.name) for code in grpc.StatusCode} == {
        "OK": "ok",
        **dict.fromkeys(
            (
                "INVALID_ARGUMENT",
                "NOT_FOUND",
                "UNAUTHENTICATED",
                "PERMISSION_DENIED",
                "RESOURCE_EXHAUSTED",
                "FAILED_PRECONDITION",
                "OUT_OF_RANGE",
                "ALREADY_EXISTS",
                "CANCELLED",
            ),
            "client_error",
        ),
        **dict.fromkeys(
            (
                "INTERNAL",
                "UNAVAILABLE",
                "UNKNOWN",
                "DEADLINE_EXCEEDED",
                "UNIMPLEMENTED",
                "DATA_LOSS",
                "ABORTED",
            ),
            "server_error",
        ),
    }
    http = {s: outcome_of(str(s)) for s in (200, 202, 304, 400, 404, 413, 422, 429, 499, 500, 503)}
    assert http == {
        **dict.fromkeys((200, 202, 304), "ok"),
        **dict.fromkeys((400, 404, 413, 422, 429, 499), "client_error"),
        **dict.fromkeys((500, 503), "server_error"),
    }
    with pytest.raises(ValueError, match="'teapot' is neither an HTTP status nor a gRPC code name"):
        outcome_of("teapot")


@pytest.fixture
def both(serve: Serve, api_registry: Registry) -> ModelService:
    """Deployment `api` of credit (version 1 stable at 75%, 2 canary at 25%) and `credit:3` by
    reference, served in process by one service."""
    service = serve([Arm(1, "stable", 75.0), Arm(2, "canary", 25.0)])
    service.add(ModelRef.parse("credit:3"), api_registry.load("credit:3"))
    service.warm_up()
    return service


def test_requests_are_counted_by_model_and_deployment_and_unknown_names_under_one_value(
    both: ModelService,
) -> None:
    metrics = both.metrics
    for name in ("nope", "credit-2", "x" * 128):
        metrics.request(name, "", "rest", "404", 0.001)
    metrics.request("api", "9", "oip-rest", "404", 0.001)
    metrics.request("api", "2", "oip-grpc", "OK", 0.002)
    metrics.request("api", "1", "rest", "500", 0.003)
    metrics.request("credit", "3", "rest", "200", 0.001)
    metrics.request("", "", "http", "404", 0.001)
    assert metrics.counters["shipyard_requests"] == {
        (UNKNOWN, "", "", "rest", "404", "client_error"): 3,
        ("credit", "api", UNKNOWN, "oip-rest", "404", "client_error"): 1,
        ("credit", "api", "2", "oip-grpc", "OK", "ok"): 1,
        ("credit", "api", "1", "rest", "500", "server_error"): 1,
        ("credit", "", "3", "rest", "200", "ok"): 1,
        ("", "", "", "http", "404", "client_error"): 1,
    }
    assert set(metrics.histograms["shipyard_request_duration_seconds"]) == {
        (UNKNOWN, "", "", "rest", "client_error"),
        ("credit", "api", UNKNOWN, "oip-rest", "client_error"),
        ("credit", "api", "2", "oip-grpc", "ok"),
        ("credit", "api", "1", "rest", "server_error"),
        ("credit", "", "3", "rest", "ok"),
        ("", "", "", "http", "client_error"),
    }


def test_a_deployments_gauges_carry_its_model_its_name_and_weights_as_ratios(both: ModelService) -> None:
    gauges = both.metrics.gauges
    assert gauges["shipyard_arm_weight"] == {
        ("credit", "api", "1", "stable"): 0.75,
        ("credit", "api", "2", "canary"): 0.25,
    }
    assert set(gauges["shipyard_deployment_generation"]) == {("credit", "api")}
    assert set(gauges["shipyard_model_info"]) == {
        ("credit", "api", "1", "sklearn"),
        ("credit", "api", "2", "sklearn"),
        ("credit", "", "3", "sklearn"),
    }
    assert gauges["shipyard_model_ready"] == {
        ("credit", "api", "1"): 1.0,
        ("credit", "api", "2"): 1.0,
        ("credit", "", "3"): 1.0,
    }


def test_requests_in_flight_are_shown_per_model_and_unknown_names_under_one_value(
    both: ModelService,
) -> None:
    metrics = both.metrics
    keys = [metrics.begin(name) for name in ("api", "api", "credit", "nope", "other", "")]
    inflight = json.loads(json.dumps(metrics.snapshot()["gauges"]["shipyard_inflight_requests"]))
    assert sorted(inflight) == sorted(
        [[["credit", "api"], 2.0], [["credit", ""], 1.0], [[UNKNOWN, ""], 2.0], [["", ""], 1.0]]
    )
    for key in keys:
        metrics.end(key)
    assert metrics.running == {"api": 0, "credit": 0, UNKNOWN: 0, "": 0}


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
            for s in samples(text, "shipyard_requests_total")
        }
        if counted.get((UNKNOWN, "", "oip-grpc", "NOT_FOUND")) == ASKED or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # A few series more (UNKNOWN's, one per protocol), not one per name asked for.
    assert len(text.encode()) < metrics_size + 20_000, "every unknown name grew /metrics"
    assert "nope-" not in text
    assert counted[(UNKNOWN, "", "rest", "404")] == ASKED
    assert counted[(UNKNOWN, "", "oip-rest", "404")] == ASKED
    assert counted[(UNKNOWN, "", "oip-grpc", "NOT_FOUND")] == ASKED


def test_workers_figures_are_summed_but_readiness_and_generation_show_the_laggard(tmp_path: Path) -> None:
    first, second = Metrics(tmp_path, worker=0), Metrics(tmp_path, worker=1)
    api = ("credit", "api")
    for metrics, ready, generation, load in ((first, 1.0, 3.0, 0.5), (second, 0.0, 2.0, 0.8)):
        metrics.inc("shipyard_predictions", (*api, "2"), 10)
        metrics.set("shipyard_model_ready", (*api, "2"), ready)
        metrics.set("shipyard_model_info", (*api, "2", "sklearn"), 1.0)
        metrics.set("shipyard_deployment_generation", api, generation)
        metrics.set("shipyard_model_load_seconds", (*api, "2"), load)
        metrics.set("shipyard_arm_weight", (*api, "2", "canary"), 0.25)
        metrics.set_total("shipyard_events_dropped", (), 4.0)
        for _ in range(3):
            metrics.begin("api")  # a name neither worker tracks: counted under UNKNOWN
        metrics.publish()
    merged = first.merged()
    assert merged["counters"]["shipyard_predictions"][(*api, "2")] == 20
    assert merged["counters"]["shipyard_events_dropped"][()] == 8
    assert merged["gauges"]["shipyard_inflight_requests"][(UNKNOWN, "")] == 6
    assert merged["gauges"]["shipyard_model_ready"][(*api, "2")] == 0.0  # not ready on every worker
    assert merged["gauges"]["shipyard_model_info"][(*api, "2", "sklearn")] == 1.0
    assert merged["gauges"]["shipyard_deployment_generation"][api] == 2.0
    assert merged["gauges"]["shipyard_model_load_seconds"][(*api, "2")] == 0.8
    assert merged["gauges"]["shipyard_arm_weight"][(*api, "2", "canary")] == 0.25
    text = render(first).decode()
    assert "shipyard_events_dropped_total 8.0" in text
    assert 'shipyard_deployment_generation{deployment="api",model="credit"} 2.0' in text
    assert 'shipyard_build_info{python="' in text


def test_each_live_worker_shows_its_own_process_once(tmp_path: Path) -> None:
    first, second = Metrics(tmp_path, worker=0), Metrics(tmp_path, worker=1)
    second.publish()
    # Worker 1's slot as two processes: one dead long ago (its figures stay in the sums, its
    # process shows no more), and the one before this, restarted moments ago: the newest shows.
    published = json.loads((tmp_path / f"metrics-1-{os.getpid()}.json").read_text())
    for pid, age, rss in ((1, 3600, 1.0), (2, 0.5, 2.0)):
        path = tmp_path / f"metrics-1-{pid}.json"
        path.write_text(
            json.dumps({**published, "process": {**published["process"], "resident_memory_bytes": rss}})
        )
        os.utime(path, (time.time() - age, time.time() - age))
    os.utime(tmp_path / f"metrics-1-{os.getpid()}.json", (time.time() - 1, time.time() - 1))
    merged = first.merged()
    assert merged["workers"] == 2
    assert list(merged["processes"]) == ["0", "1"]
    assert merged["processes"]["1"]["resident_memory_bytes"] == 2.0
    assert merged["processes"]["0"]["open_fds"] > 0 and merged["processes"]["0"]["cpu_seconds"] > 0
    text = render(first).decode()
    assert 'process_resident_memory_bytes{worker="1"} 2.0' in text
    assert len(samples(text, "process_start_time_seconds")) == 2


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
def test_promtool_finds_every_family_clean_with_every_outcome(both: ModelService) -> None:
    metrics = both.metrics
    for status in ("200", "404", "499", "500", "503"):
        metrics.request("api", "1", "rest", status, 0.01)
    for code in grpc.StatusCode:
        metrics.request("credit", "3", "oip-grpc", code.name, 0.01)
    metrics.inc("shipyard_shadow_requests", ("credit", "api", "2", "shed"))
    metrics.observe("shipyard_adaptive_batch_rows", ("credit", "api"), 4)
    text = render(metrics).decode()
    assert promtool_problems(text) == ""


@pytest.fixture
def fragile(sqlite_registry: Registry) -> Path:
    """A home with model `fragile` (the log of `x`, then a logistic regression: a negative `x`
    makes the model fail, a server error) in versions 1 and 2, and deployment `edge` of it:
    version 1 stable at 50%, version 2 canary at 50%."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    frame = pd.DataFrame({"x": np.linspace(0.5, 20.0, 200)})
    frame["y"] = (frame["x"] > 8).astype(int)
    for _ in range(2):
        model = make_pipeline(FunctionTransformer(np.log), LogisticRegression())
        model.fit(frame[["x"]], frame["y"])
        sqlite_registry.register(model, name="fragile", train_data=frame, target="y")
    deployments = Deployments(sqlite_registry)
    deployments.create("edge", "fragile:1")
    deployments.set_arms("edge", [Arm(1, "stable", 50.0), Arm(2, "canary", 50.0)], reason="test")
    return sqlite_registry.settings.home


def edge_row(x: float, model: str = "edge") -> pb.ModelInferRequest:
    """A gRPC request of one row of `fragile`'s feature `x`."""
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="x", datatype="FP64", shape=[1]).contents.fp64_contents.append(x)
    return request


def test_a_real_scrape_after_every_kind_of_answer_over_both_protocols(fragile: Path) -> None:
    server = ServerProcess(fragile, [], "--deployment", "edge").wait_ready()
    try:
        http = server.http
        for x, status in ((2.0, 200), (12.0, 200), (-1.0, 500), ("many", 422)):
            assert http.post("/v1/models/edge/predict", json={"instances": [{"x": x}]}).status_code == status
        assert http.post("/v1/models/nope/predict", json={"instances": [{"x": 1.0}]}).status_code == 404
        assert http.post("/invocations", json={"dataframe_records": [{"x": 3.0}]}).status_code == 200
        with grpc.insecure_channel(server.grpc_target) as channel:
            infer = channel.unary_unary(
                "/inference.GRPCInferenceService/ModelInfer",
                request_serializer=pb.ModelInferRequest.SerializeToString,
                response_deserializer=pb.ModelInferResponse.FromString,
            )
            infer(edge_row(2.0), timeout=10)
            refused = (
                (edge_row(-1.0), grpc.StatusCode.INTERNAL),
                (edge_row(1.0, "nope"), grpc.StatusCode.NOT_FOUND),
            )
            for request, code in refused:
                with pytest.raises(grpc.RpcError) as caught:
                    infer(request, timeout=10)
                assert caught.value.code() == code
        deadline = time.monotonic() + 5
        while True:  # a gRPC call is counted as its answer leaves: maybe a moment after the client has it
            text = http.get("/metrics").text
            outcomes = {
                (s.labels["protocol"], s.labels["outcome"]) for s in samples(text, "shipyard_requests_total")
            }
            if ("oip-grpc", "client_error") in outcomes or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        server.terminate()
    for protocol in ("rest", "oip-grpc"):
        assert {o for p, o in outcomes if p == protocol} == {"ok", "client_error", "server_error"}, protocol
    served = {
        (s.labels["model"], s.labels["deployment"])
        for s in samples(text, "shipyard_requests_total")
        if s.labels["outcome"] != "client_error"
    }
    assert served == {("fragile", "edge")}
    answered = {
        s.labels["version"]
        for s in samples(text, "shipyard_request_duration_seconds_count")
        if s.labels["outcome"] == "ok"
    }
    assert answered and answered <= {"1", "2"}  # the latency of each arm, for canary analysis
    weights = {s.labels["version"]: s.value for s in samples(text, "shipyard_arm_weight")}
    assert weights == {"1": 0.5, "2": 0.5}
    assert {s.labels["version"] for s in samples(text, "shipyard_model_info")} == {"1", "2"}
    inflight = samples(text, "shipyard_inflight_requests")
    assert inflight and sum(s.value for s in inflight) == 0  # the scrape itself is not counted
    assert {(s.labels["model"], s.labels["deployment"]) for s in inflight} >= {("fragile", "edge")}
    assert [s.labels["worker"] for s in samples(text, "process_resident_memory_bytes")] == ["0"]
    assert samples(text, "shipyard_adaptive_batch_rows_count")
    if PROMTOOL is not None:
        assert promtool_problems(text) == ""
