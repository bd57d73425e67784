"""Clients and protocols against a real server: missing values in JSON, the request id over gRPC,
integers that must not wrap, and an answer (never a 5xx, never a dropped connection) to requests
that are malformed in every way a hostile tester found.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import orjson
import pandas as pd
import pytest

from servers import CREDIT_DATATYPES as DATATYPES
from servers import ServerProcess, credit_row
from shipyard import Client, Registry, Settings
from shipyard.errors import ContractViolationError
from shipyard.serving import oip_v2_pb2 as pb

INFER = "/inference.GRPCInferenceService/ModelInfer"


@pytest.fixture(scope="module")
def home(credit_home: Path) -> Path:
    """The credit model, and `square`: four numbers in, so that a [rows, 4] tensor's size can wrap."""
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(60, 4)), columns=list("abcd"))
    frame["y"] = frame.sum(axis=1)
    with Registry(Settings.for_home(credit_home), actor="tester") as registry:
        model = LinearRegression().fit(frame[list("abcd")], frame["y"])
        registry.register(model, name="square", train_data=frame, target="y")
    return credit_home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[ServerProcess]:
    """`shipyard serve credit@production square` taking bodies up to 20 MB (a 10 MB value fits)."""
    process = ServerProcess(home, ["credit@production", "square"], "--max-body-bytes", "20000000")
    try:
        yield process.wait_ready()
    finally:
        process.terminate()


def oip_body(row: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """An OIP REST body of one row, one tensor per feature; `changes` replace a tensor's fields."""
    inputs = []
    for name, datatype in DATATYPES.items():
        tensor = {"name": name, "shape": [1], "datatype": datatype, "data": [row[name]]}
        tensor.update(changes.get(name, {}))
        inputs.append(tensor)
    return {"inputs": inputs}


def grpc_request(row: dict[str, Any], **datatypes: str) -> pb.ModelInferRequest:
    """A gRPC ModelInferRequest of one row in typed contents; `datatypes` overrides a feature's."""
    request = pb.ModelInferRequest(model_name="credit")
    for name, default in DATATYPES.items():
        datatype = datatypes.get(name, default)
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[1])
        value = row[name]
        if datatype == "BYTES":
            tensor.contents.bytes_contents.append(value.encode())
        elif datatype == "INT64":
            tensor.contents.int64_contents.append(value)
        elif datatype in ("INT8", "INT16", "INT32"):
            tensor.contents.int_contents.append(value)
        else:
            tensor.contents.fp64_contents.append(value)
    return request


def infer(server: ServerProcess, request: Any, *, serialize: bool = True) -> pb.ModelInferResponse:
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary(
            INFER,
            request_serializer=pb.ModelInferRequest.SerializeToString if serialize else None,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        return call(request, timeout=30)


# -- missing values over JSON ---------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["rows", "frame"])
def test_the_http_client_sends_a_missing_value_as_null(server: ServerProcess, shape: str) -> None:
    rows: Any = [credit_row(income=float("nan")), credit_row(income=np.float64("nan"))]
    if shape == "frame":
        rows = pd.DataFrame(rows)
    with Client(server.url) as client:
        answer = client.predict("credit", rows)  # income may be missing in this contract
        assert len(answer.predictions) == 2
        with pytest.raises(ContractViolationError) as caught:
            client.predict("credit", [credit_row(), credit_row(months_employed=float("nan"))])
    # The server read the body: the contract (not the JSON parser) refused the missing value.
    (violation,) = caught.value.violations
    assert (violation.row, violation.feature) == (1, "months_employed")
    assert "missing" in violation.reason


@pytest.mark.parametrize(
    ("literal", "words"),
    [
        ("NaN", "NaN is not JSON"),
        ("Infinity", "Infinity is not JSON"),
        ("-Infinity", "-Infinity is not JSON"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/models/credit/predict", "/v2/models/credit/infer"])
def test_a_bare_nan_or_infinity_is_named_with_the_fix(
    server: ServerProcess, path: str, literal: str, words: str
) -> None:
    body = json.dumps(oip_body(credit_row()) if "v2" in path else {"instances": [credit_row()]})
    body = body.replace("5200.0", literal)
    response = server.http.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert words in response.text
    assert "null" in response.text


# -- request ids ----------------------------------------------------------------------------------
def test_grpc_answers_carry_the_request_id_the_server_made(server: ServerProcess) -> None:
    with Client(f"grpc://{server.grpc_target}") as client:
        first = client.predict("credit", [credit_row()])
        second = client.predict("credit", [credit_row()])
        named = client.predict("credit", [credit_row()], request_id="mine-1")
    assert first.request_id and second.request_id
    assert first.request_id != second.request_id
    assert named.request_id == "mine-1"
    # It is the id the prediction log keeps: a label sent for it is joined, not refused.
    label = server.http.post("/v1/feedback", json={"request_id": first.request_id, "label": 0})
    assert label.status_code == 202, label.text
    unknown = server.http.post("/v1/feedback", json={"request_id": "never-answered", "label": 0})
    assert unknown.status_code == 400, unknown.text


def test_oip_rest_answers_carry_the_request_id_the_server_made(server: ServerProcess) -> None:
    response = server.http.post("/v2/models/credit/infer", json=oip_body(credit_row()))
    assert response.status_code == 200
    assert response.json()["id"]
    assert response.json()["id"] == response.headers["x-request-id"]


# -- integers that must not wrap ------------------------------------------------------------------
@pytest.mark.parametrize("value", [1e308, 2**63, 10**24, -(2**64), -1e300, -(2**63) - 1])
def test_an_integer_past_int64_is_a_violation_on_our_api(server: ServerProcess, value: Any) -> None:
    body = json.dumps({"instances": [credit_row(), credit_row(age=value)]})
    response = server.http.post(
        "/v1/models/credit/predict", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    (violation,) = response.json()["error"]["violations"]
    assert (violation["row"], violation["feature"]) == (1, "age")
    assert "int64" in violation["reason"]
    assert "9223372036854775807" in violation["reason"]


def test_an_oip_json_integer_tensor_refuses_fractions_and_overflow(server: ServerProcess) -> None:
    body = oip_body(credit_row(), age={"data": [1.5]}, months_employed={"data": [1e308]})
    response = server.http.post("/v2/models/credit/infer", json=body)
    assert response.status_code == 422, response.text
    message = response.json()["error"]
    assert "feature 'age' of row 0 is 1.5: not an integer" in message
    assert "feature 'months_employed' of row 0 is 1e+308: outside the range" in message
    below = server.http.post(
        "/v2/models/credit/infer", json=oip_body(credit_row(), age={"data": [-(2**63) - 1]})
    )
    assert below.status_code == 422, below.text


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"age": {"data": [True]}}, "input 'age' is INT64 but holds a bool; expected numbers only"),
        ({"debt_ratio": {"data": [False]}}, "input 'debt_ratio' is FP64 but holds a bool"),
        ({"age": {"data": [[40]]}}, "input 'age' has shape [1] but its data is nested otherwise"),
    ],
    ids=["true as INT64", "false as FP64", "nested past its shape"],
)
def test_an_oip_json_tensor_holds_only_what_its_datatype_and_shape_say(
    server: ServerProcess, changes: dict[str, Any], says: str
) -> None:
    response = server.http.post("/v2/models/credit/infer", json=oip_body(credit_row(), **changes))
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]


def test_an_oip_json_matrix_may_come_as_rows(server: ServerProcess) -> None:
    body = {
        "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}]
    }
    flat = {"inputs": [{**body["inputs"][0], "data": [1, 2, 3, 4, 5, 6, 7, 8]}]}
    rows = server.http.post("/v2/models/square/infer", json=body)
    assert rows.status_code == 200, rows.text
    assert rows.json()["outputs"] == server.http.post("/v2/models/square/infer", json=flat).json()["outputs"]
    ragged = {"inputs": [{**body["inputs"][0], "data": [[1, 2, 3], [4, 5, 6, 7, 8]]}]}
    assert server.http.post("/v2/models/square/infer", json=ragged).status_code == 400


def test_a_grpc_int8_tensor_refuses_what_int8_cannot_hold(server: ServerProcess) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        infer(server, grpc_request(credit_row(age=1000), age="INT8"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "feature 'age' of row 0 is 1000: outside the range of the input's datatype INT8 [-128, 127]" in (
        caught.value.details()
    )
    trailer = dict(caught.value.trailing_metadata())
    (violation,) = orjson.loads(trailer["shipyard-violations-bin"])
    assert (violation["row"], violation["feature"], violation["value"]) == (0, "age", 1000)


def test_many_violations_over_grpc_still_arrive_as_violations(server: ServerProcess) -> None:
    """300 violations do not fit gRPC's 8 KiB of metadata: the trailer keeps those that fit."""
    bad = {"age": "x" * 100, "income": "y" * 100, "months_employed": "z" * 100}
    with Client(f"grpc://{server.grpc_target}") as client, pytest.raises(ContractViolationError) as caught:
        client.predict("credit", [credit_row(**bad) for _ in range(50)])
    assert "150 violation(s)" in str(caught.value)
    assert 10 <= len(caught.value.violations) < 150
    assert caught.value.violations[0].feature == "age"


# -- malformed requests get an answer -------------------------------------------------------------
@pytest.mark.parametrize(
    ("tensor", "shown"),
    [
        # 2**62 * 4 wraps to 0 in int64: no values at all would have passed for that many.
        ({"name": "x", "shape": [2**62, 4], "datatype": "FP64", "data": []}, "[4611686018427387904, 4]"),
    ],
)
def test_a_shape_too_large_to_count_is_400_naming_it(
    server: ServerProcess, tensor: dict[str, Any], shown: str
) -> None:
    response = server.http.post("/v2/models/square/infer", json={"inputs": [tensor]})
    assert response.status_code == 400, response.text
    assert shown in response.json()["error"]


def test_a_grpc_shape_too_large_to_count_is_invalid_argument(server: ServerProcess) -> None:
    request = pb.ModelInferRequest(model_name="square")
    request.inputs.add(name="x", datatype="FP64", shape=[2**62, 4])
    with pytest.raises(grpc.RpcError) as caught:
        infer(server, request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "[4611686018427387904, 4]" in caught.value.details()


def test_malformed_protobuf_is_invalid_argument(server: ServerProcess) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        infer(server, b"\xff\xff\xff\xff", serialize=False)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid ModelInferRequest protobuf message" in caught.value.details()
    assert infer(server, grpc_request(credit_row())).model_name == "credit"  # the server is fine


def test_a_control_character_in_an_oip_id_is_refused_with_an_answer(server: ServerProcess) -> None:
    body = {"id": "abc\r\nSet-Cookie: x=1", **oip_body(credit_row())}
    response = server.http.post("/v2/models/credit/infer", json=body)
    assert response.status_code == 400
    assert "control characters" in response.json()["error"]
    assert "set-cookie" not in response.headers


def test_an_echoed_value_is_capped(server: ServerProcess) -> None:
    huge = "x" * 10_000_000
    response = server.http.post("/v1/models/credit/predict", json={"instances": [credit_row(age=huge)]})
    assert response.status_code == 422
    assert len(response.content) < 5_000
    (violation,) = response.json()["error"]["violations"]
    assert violation["value"].endswith("... (10000000 characters)")
    assert "(10000000 characters)" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [credit_row()], "inputs": {}, "k" * 10_000_000: 1},  # in "has keys [...]"
        {"inputs": {"age": [1], "c" * 10_000_000: [1, 2]}},  # a column name, in "differ in length"
    ],
    ids=["key", "column"],
)
def test_an_echoed_name_is_capped(server: ServerProcess, body: dict[str, Any]) -> None:
    response = server.http.post("/v1/models/credit/predict", json=body)
    assert response.status_code == 400
    assert len(response.content) < 5_000
    assert "kkkkk..." in response.text or "ccccc..." in response.text


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/models/credit/predict", "POST"),
        ("PUT", "/v1/models/credit/predict", "POST"),
        ("GET", "/v2/models/credit/infer", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/v2/models/credit", "GET, HEAD"),
        ("POST", "/v2/models/credit/versions/1/ready", "GET, HEAD"),
    ],
)
def test_a_wrong_method_on_a_known_path_is_405_with_allow(
    server: ServerProcess, method: str, path: str, allow: str
) -> None:
    response = server.http.request(method, path)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    assert f"use {allow}" in response.json()["error"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("POST", "/v1/nope"), ("PUT", "/v3")])
def test_an_unknown_path_is_404_whatever_the_method(server: ServerProcess, method: str, path: str) -> None:
    response = server.http.request(method, path)
    assert response.status_code == 404
    assert "allow" not in response.headers


def test_a_raw_request_with_a_crlf_id_gets_a_whole_answer(server: ServerProcess) -> None:
    """The socket view of the CR/LF case: a status line comes back, the connection is not just cut."""
    body = json.dumps({"id": "a\nb", **oip_body(credit_row())}).encode()
    head = (
        f"POST /v2/models/credit/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400")
