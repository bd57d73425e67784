"""Explanations served by a real server: ours, KServe v1's, the OIP's over REST and gRPC; the same
contract checks, request ids and prediction log as predict; explanations read back by request id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression

from servers import CREDIT_DATATYPES, ServerProcess, credit_row
from shipyard import Registry, Settings
from shipyard.monitoring.events import read_events
from shipyard.serving import oip
from shipyard.serving import oip_v2_pb2 as pb
from shipyard.serving.wire import GRPC_SERVICE

ROWS = [credit_row(), credit_row(age=63, income=1500.0, country="FR", employment="retired")]


def _explain(
    server: ServerProcess, body: Any, path: str = "/v1/models/credit/explain", **headers: str
) -> Any:
    return server.http.post(
        path, content=orjson.dumps(body), headers={"content-type": "application/json", **headers}
    )


@pytest.fixture(scope="module")
def explained(credit_server: ServerProcess) -> dict[str, Any]:
    """One explain request of two rows, answered (request id `explain-1`)."""
    response = _explain(credit_server, {"instances": ROWS, "top": 3}, **{"x-request-id": "explain-1"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_explain_answers_predict_and_an_explanation_that_adds_up(
    credit_server: ServerProcess, explained: dict[str, Any]
) -> None:
    predicted = credit_server.http.post("/v1/models/credit/predict", json={"instances": ROWS}).json()
    assert explained["request_id"] == "explain-1"
    assert (explained["model"], explained["version"]) == ("credit", 1)
    assert explained["predictions"] == predicted["predictions"]
    assert explained["probabilities"] == predicted["probabilities"]
    e = explained["explanation"]
    assert e["features"] == list(CREDIT_DATATYPES)
    # the credit model is gradient boosting: TreeSHAP in log-odds of the positive class
    assert e["method"] == "tree_shap" and e["exact"] is True
    assert e["outputs"] == ["1"] and e["space"] == "log_odds"
    values, base = np.asarray(e["attributions"]), np.asarray(e["base_values"])
    assert values.shape == (2, 6, 1)
    np.testing.assert_allclose(values.sum(axis=1) + base, e["output_values"], atol=1e-6)
    assert max(e["additivity_error"]) <= 1e-6
    probability = 1 / (1 + np.exp(-np.asarray(e["output_values"])[:, 0]))
    np.testing.assert_allclose(probability, [p["1"] for p in predicted["probabilities"]], rtol=1e-9)
    assert [len(t) for t in e["top_features"]] == [3, 3]
    assert set(e["top_features"][0][0]) == {"feature", "value", "attribution"}


def test_the_same_request_twice_gives_byte_identical_explanations(credit_server: ServerProcess) -> None:
    body = {"dataframe_split": {"columns": list(ROWS[0]), "data": [list(ROWS[0].values())]}, "output": 1}
    first, second = (_explain(credit_server, body) for _ in range(2))
    assert first.status_code == second.status_code == 200, first.text
    assert orjson.dumps(first.json()["explanation"]) == orjson.dumps(second.json()["explanation"])
    assert first.json()["explanation"]["outputs"] == ["1"]
    assert first.json()["request_id"] != second.json()["request_id"]


def test_an_explanation_is_logged_and_read_back_by_request_id(
    credit_server: ServerProcess, explained: dict[str, Any]
) -> None:
    kept = credit_server.http.get("/v1/models/credit/explanations/explain-1")
    assert kept.status_code == 200, kept.text
    record = kept.json()
    assert record["request_id"] == "explain-1" and record["version"] == 1
    assert record["explanation"] == explained["explanation"]
    assert record["predictions"] == explained["predictions"]
    missing = credit_server.http.get("/v1/models/credit/explanations/never-sent")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    # The prediction log has the request's rows under its id, as predict's.
    store = str(credit_server.home / "artifacts")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = datetime.now(UTC)
        events = read_events(
            store, "credit", since=now - timedelta(hours=1), until=now + timedelta(minutes=1)
        )
        ids = events.column("request_id").to_pylist() if "request_id" in events.column_names else []
        if ids.count("explain-1") == 2:
            break
        time.sleep(0.2)
    assert ids.count("explain-1") == 2


def test_kserve_v1_explain_answers_one_explanation_per_row(credit_server: ServerProcess) -> None:
    response = _explain(credit_server, {"instances": ROWS}, "/v1/models/credit:explain")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"], body["outputs"]) == ("credit", 1, ["1"])
    assert len(body["explanations"]) == 2
    row = body["explanations"][1]
    assert set(row) >= {"prediction", "probabilities", "attributions", "base_values", "output_values"}
    total = sum(row["attributions"]["1"].values()) + row["base_values"]["1"]
    assert total == pytest.approx(row["output_values"]["1"], abs=1e-6)
    assert _explain(credit_server, {"rows": ROWS}, "/v1/models/credit:explain").status_code == 400


def _oip_inputs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"name": f, "datatype": d, "shape": [len(rows)], "data": [r[f] for r in rows]}
        for f, d in CREDIT_DATATYPES.items()
    ]


def test_oip_rest_explain_answers_typed_tensors(credit_server: ServerProcess) -> None:
    request = {"id": "oip-1", "inputs": _oip_inputs(ROWS), "parameters": {"method": "exact", "top": 2}}
    response = credit_server.http.post("/v2/models/credit/versions/1/explain", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    tensors = {t["name"]: t for t in body["outputs"]}
    assert set(tensors) == {
        "prediction",
        "probabilities",
        "attributions",
        "base_values",
        "output_values",
        "additivity_error",
    }
    assert tensors["attributions"]["shape"] == [2, 6, 2] and tensors["attributions"]["datatype"] == "FP64"
    assert tensors["base_values"]["shape"] == [2, 2] and tensors["additivity_error"]["shape"] == [2]
    assert body["parameters"]["method"] == "exact"
    assert orjson.loads(body["parameters"]["features"]) == list(CREDIT_DATATYPES)
    values = np.asarray(tensors["attributions"]["data"]).reshape(2, 6, 2)
    base = np.asarray(tensors["base_values"]["data"]).reshape(2, 2)
    out = np.asarray(tensors["output_values"]["data"]).reshape(2, 2)
    np.testing.assert_allclose(values.sum(axis=1) + base, out, atol=1e-6)
    assert credit_server.http.get("/v1/models/credit/explanations/oip-1").status_code == 200


def test_grpc_model_infer_with_explain_answers_the_tensors(credit_server: ServerProcess) -> None:
    request = pb.ModelInferRequest(model_name="credit", id="grpc-1")
    for feature, datatype in CREDIT_DATATYPES.items():
        tensor = request.inputs.add(name=feature, datatype=datatype, shape=[1])
        value = ROWS[0][feature]
        if datatype == "BYTES":
            tensor.contents.bytes_contents.append(value.encode())
        elif datatype == "INT64":
            tensor.contents.int64_contents.append(value)
        else:
            tensor.contents.fp64_contents.append(value)
    request.parameters["explain"].bool_param = True
    request.parameters["output"].string_param = "1"
    with grpc.insecure_channel(credit_server.grpc_target) as channel:
        call = channel.unary_unary(
            f"/{GRPC_SERVICE}/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        response = call(request, timeout=60)
        request.parameters["method"].string_param = "nonsense"
        with pytest.raises(grpc.RpcError) as refused:
            call(request, timeout=60)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "expected one of" in refused.value.details()
    raw = dict(zip([o.name for o in response.outputs], response.raw_output_contents, strict=True))
    shapes = {o.name: list(o.shape) for o in response.outputs}
    assert shapes["attributions"] == [1, 6, 1] and shapes["base_values"] == [1, 1]
    values = oip.from_raw(raw["attributions"], "FP64", "attributions")
    base = oip.from_raw(raw["base_values"], "FP64", "base_values")
    out = oip.from_raw(raw["output_values"], "FP64", "output_values")
    assert values.sum() + base[0] == pytest.approx(out[0], abs=1e-6)
    assert response.parameters["outputs"].string_param == '["1"]'
    assert response.id == "grpc-1"


def test_contract_violations_get_predict_s_errors(credit_server: ServerProcess) -> None:
    bad = {"instances": [credit_row(income="abc"), credit_row(age=-4)]}
    predicted = credit_server.http.post("/v1/models/credit/predict", json=bad)
    explained = _explain(credit_server, bad)
    assert explained.status_code == predicted.status_code == 422
    mine, theirs = explained.json()["error"], predicted.json()["error"]
    assert (mine["type"], mine["message"], mine["violations"]) == (
        theirs["type"],
        theirs["message"],
        theirs["violations"],
    )
    missing = _explain(credit_server, {"instances": [{"age": 41}]})
    assert missing.status_code == 422 and "missing column" in missing.json()["error"]["message"]


def _bad_id(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


@pytest.mark.parametrize(
    ("key", "value", "status"),
    [
        ("method", 5, 400),
        ("method", True, 400),
        ("method", [], 400),
        ("method", {}, 400),
        ("method", "nonsense", 422),
        ("output", 1.5, 400),
        ("output", [], 400),
        ("output", {}, 400),
        ("output", "7", 422),
        ("output", "value", 422),
        ("top", 0, 400),
        ("top", -1, 400),
        ("top", 2.5, 400),
        ("top", "3", 400),
        ("top", True, 400),
        ("top", [], 400),
        ("top", 10**6, 400),
    ],
    ids=_bad_id,
)
def test_bad_options_get_a_4xx_naming_what_is_expected(
    credit_server: ServerProcess, key: str, value: Any, status: int
) -> None:
    response = _explain(credit_server, {"instances": ROWS[:1], key: value})
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    assert "expected" in message or "outputs are" in message
    assert f"'{key}'" in message or "output" in message


def test_openapi_lists_the_explain_routes(credit_server: ServerProcess) -> None:
    paths = credit_server.http.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/models/{name}/explain",
        "/v1/models/{name}:explain",
        "/v2/models/{name}/explain",
        "/v2/models/{name}/versions/{version}/explain",
        "/v1/models/{name}/explanations/{request_id}",
    ):
        assert path in paths, path
    assert paths["/v1/models/{name}/explain"]["post"]["x-shipyard-action"] == "predict"
    assert paths["/v1/models/{name}:explain"]["post"]["parameters"][0]["name"] == "name"
    typed = paths["/v1/models/credit/explain"]["post"]
    assert typed["operationId"] == "explain_credit"
    options = typed["requestBody"]["content"]["application/json"]["schema"]["allOf"][1]["properties"]
    assert "exact" in options["method"]["enum"]


@pytest.fixture(scope="module")
def other_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of a regressor (`reg`) and a 500-feature classifier (`wide`)."""
    home = tmp_path_factory.mktemp("explain-others")
    with Registry(Settings.for_home(home), actor="tester") as registry:
        X, y = make_regression(200, 4, random_state=0)
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(4)])
        registry.register(
            LinearRegression().fit(frame, y), name="reg", train_data=frame.assign(y=y), target="y"
        )
        X, y = make_classification(300, 500, random_state=0)
        frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(500)])
        model = LogisticRegression(max_iter=300).fit(frame, y)
        registry.register(model, name="wide", train_data=frame.assign(y=y), target="y")
    server = ServerProcess(home, ["reg", "wide"])
    try:
        yield server.wait_ready()
    finally:
        server.terminate()


def test_a_regressor_has_no_class_output(other_server: ServerProcess) -> None:
    row = {f"x{i}": 0.5 for i in range(4)}
    refused = _explain(other_server, {"instances": [row], "output": "1"}, "/v1/models/reg/explain")
    assert refused.status_code == 422
    assert refused.json()["error"]["type"] == "unsupported_explanation"
    assert "'value'" in refused.json()["error"]["message"]
    answered = _explain(other_server, {"instances": [row], "output": "value"}, "/v1/models/reg/explain")
    assert answered.status_code == 200, answered.text
    assert answered.json()["explanation"]["outputs"] == ["value"]


def test_exact_over_500_features_is_refused_at_once(other_server: ServerProcess) -> None:
    row = {f"f{i}": 0.1 for i in range(500)}
    started = time.perf_counter()
    refused = _explain(other_server, {"instances": [row], "method": "exact"}, "/v1/models/wide/explain")
    assert time.perf_counter() - started < 5
    assert refused.status_code == 422
    message = refused.json()["error"]["message"]
    assert "permutation" in message and "500" in message


def test_an_explain_request_too_costly_for_its_method_is_refused_before_any_work(
    other_server: ServerProcess,
) -> None:
    # permutation over 500 features: about 1.1 million model rows per explained row
    row = {f"f{i}": 0.1 for i in range(500)}
    started = time.perf_counter()
    body = {"instances": [row, row], "method": "permutation"}
    response = _explain(other_server, body, "/v1/models/wide/explain")
    assert time.perf_counter() - started < 5
    assert response.status_code == 413, response.text
    message = response.json()["error"]["message"]
    assert "send at most 1 rows" in message and "2,000,000" in message
    linear = _explain(other_server, {"instances": [row] * 20}, "/v1/models/wide/explain")
    assert linear.status_code == 200 and linear.json()["explanation"]["method"] == "linear"


def test_a_request_id_with_a_slash_is_replaced_so_that_it_can_be_read_back(
    credit_server: ServerProcess,
) -> None:
    response = _explain(credit_server, {"instances": ROWS[:1]}, **{"x-request-id": "a/b"})
    assert response.status_code == 200
    rid = response.json()["request_id"]
    assert "/" not in rid
    assert credit_server.http.get(f"/v1/models/credit/explanations/{rid}").status_code == 200
