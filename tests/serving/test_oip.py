"""The Open Inference Protocol v2 over REST and gRPC, driven by Triton's own client library."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from servers import CREDIT_DATATYPES as DATATYPES
from servers import ServerProcess, credit_infer_request, credit_row

ROWS = [credit_row(), credit_row(age=25, employment="unemployed", debt_ratio=0.8, country="ES")]


def feature_inputs(module: Any, rows: list[dict[str, Any]], *, binary: bool | None = None) -> list[Any]:
    inputs = []
    for name, datatype in DATATYPES.items():
        values = [r[name] for r in rows]
        array = np.asarray(values, dtype=object if datatype == "BYTES" else None)
        if datatype == "BYTES":
            array = np.asarray([v.encode() for v in values], dtype=object)
        tensor = module.InferInput(name, [len(rows)], datatype)
        if binary is None:
            tensor.set_data_from_numpy(array)
        else:
            tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.fixture(scope="module")
def expected(credit_server: ServerProcess) -> dict[str, Any]:
    return credit_server.http.post("/v1/models/credit/predict", json={"instances": ROWS}).json()


@pytest.fixture
def http_client(credit_server: ServerProcess) -> Any:
    client = triton_http.InferenceServerClient(f"127.0.0.1:{credit_server.port}")
    yield client
    client.close()


@pytest.fixture
def grpc_client(credit_server: ServerProcess) -> Any:
    client = triton_grpc.InferenceServerClient(credit_server.grpc_target)
    yield client
    client.close()


def check(result: Any, expected: dict[str, Any]) -> None:
    assert result.as_numpy("prediction").tolist() == expected["predictions"]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (2, 2)
    assert probabilities[:, 1].tolist() == pytest.approx([p["1"] for p in expected["probabilities"]])


def test_rest_health_and_metadata(http_client: Any) -> None:
    assert http_client.is_server_live()
    assert http_client.is_server_ready()
    assert http_client.is_model_ready("credit")
    assert http_client.is_model_ready("credit", "1")
    assert not http_client.is_model_ready("credit", "7")
    assert http_client.get_server_metadata()["name"] == "shipyard"
    meta = http_client.get_model_metadata("credit")
    assert meta["versions"] == ["1"]
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == DATATYPES
    assert [o["name"] for o in meta["outputs"]] == ["prediction", "probabilities"]


@pytest.mark.parametrize("binary", [True, False])
def test_rest_infer_with_one_input_per_feature(
    http_client: Any, expected: dict[str, Any], binary: bool
) -> None:
    outputs = [
        triton_http.InferRequestedOutput(n, binary_data=binary) for n in ("prediction", "probabilities")
    ]
    result = http_client.infer("credit", feature_inputs(triton_http, ROWS, binary=binary), outputs=outputs)
    check(result, expected)
    classes = json.loads(result.get_output("probabilities")["parameters"]["classes"])
    assert classes == [0, 1]


def test_rest_infer_by_version_and_default_binary_outputs(http_client: Any, expected: dict[str, Any]) -> None:
    result = http_client.infer("credit", feature_inputs(triton_http, ROWS), model_version="1")
    check(result, expected)


def test_rest_infer_with_one_2d_tensor(http_client: Any, expected: dict[str, Any]) -> None:
    matrix = np.asarray([[str(r[n]).encode() for n in DATATYPES] for r in ROWS], dtype=object)
    tensor = triton_http.InferInput("input-0", list(matrix.shape), "BYTES")
    tensor.set_data_from_numpy(matrix)
    check(http_client.infer("credit", [tensor]), expected)


def test_rest_violation_is_the_oip_error_shape(credit_server: ServerProcess, http_client: Any) -> None:
    rows = [credit_row(), credit_row(age=-5.5)]
    bad = feature_inputs(triton_http, ROWS)
    bad[0] = triton_http.InferInput("age", [2], "FP64")
    bad[0].set_data_from_numpy(np.asarray([41.0, 2.5]))
    with pytest.raises(InferenceServerException, match="feature 'age' of row 1 is 2.5"):
        http_client.infer("credit", bad)
    body = {
        "inputs": [
            {
                "name": n,
                "datatype": DATATYPES[n].replace("INT64", "FP64"),
                "shape": [2],
                "data": [r[n] for r in rows],
            }
            for n in DATATYPES
        ]
    }
    response = credit_server.http.post("/v2/models/credit/infer", json=body)
    assert response.status_code == 422
    assert set(response.json()) == {"error"}
    assert "feature 'age' of row 1" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"inputs": "x"}, "'inputs' list"),
        ({"inputs": [{"name": "age", "datatype": "INT99", "shape": [1], "data": [1]}]}, "datatype"),
        ({"inputs": [{"name": "age", "datatype": "INT64", "shape": [2], "data": [1]}]}, "shape [2]"),
        ({"inputs": [{"name": "age", "datatype": "INT64", "shape": [1], "data": ["a"]}]}, "numbers only"),
    ],
)
def test_rest_malformed_tensors_are_400(credit_server: ServerProcess, body: Any, words: str) -> None:
    response = credit_server.http.post("/v2/models/credit/infer", json=body)
    assert response.status_code == 400
    assert words in response.json()["error"]


def test_rest_unknown_model_and_version_are_404(credit_server: ServerProcess) -> None:
    assert credit_server.http.get("/v2/models/nope").status_code == 404
    assert (
        credit_server.http.post("/v2/models/credit/versions/3/infer", json={"inputs": []}).status_code == 404
    )


def test_grpc_all_six_rpcs(grpc_client: Any, expected: dict[str, Any]) -> None:
    assert grpc_client.is_server_live()
    assert grpc_client.is_server_ready()
    assert grpc_client.is_model_ready("credit")
    assert not grpc_client.is_model_ready("other")
    assert grpc_client.get_server_metadata().name == "shipyard"
    meta = grpc_client.get_model_metadata("credit")
    assert {i.name: i.datatype for i in meta.inputs} == DATATYPES
    check(grpc_client.infer("credit", feature_inputs(triton_grpc, ROWS)), expected)


def test_grpc_typed_contents_without_raw(credit_server: ServerProcess, expected: dict[str, Any]) -> None:
    import grpc

    from shipyard.serving import oip_v2_pb2 as pb

    request = credit_infer_request(ROWS)
    with grpc.insecure_channel(credit_server.grpc_target) as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        response = call(request)
    labels = np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist()
    assert labels == expected["predictions"]


def test_grpc_violation_is_invalid_argument_with_the_same_text(grpc_client: Any) -> None:
    rows = [credit_row(), credit_row(country="XX")]
    bad = feature_inputs(triton_grpc, rows)
    bad[0] = triton_grpc.InferInput("age", [2], "FP64")
    bad[0].set_data_from_numpy(np.asarray([41.0, 2.5]))
    with pytest.raises(InferenceServerException) as caught:
        grpc_client.infer("credit", bad)
    assert "INVALID_ARGUMENT" in str(caught.value.status())
    assert "feature 'age' of row 1 is 2.5: expected an integer" in caught.value.message()


def test_grpc_unknown_model_is_not_found(grpc_client: Any) -> None:
    with pytest.raises(InferenceServerException) as caught:
        grpc_client.infer("nope", feature_inputs(triton_grpc, ROWS))
    assert "NOT_FOUND" in str(caught.value.status())


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (None, "it is a JSON null"),
        (5, "it is a JSON number"),
        ({"inputs": "x"}, "its 'inputs' is a JSON string"),
        ({"inputs": [], "parameters": 5}, "'parameters' is a JSON number"),
        ({"inputs": [], "parameters": ["top"]}, "'parameters' is a JSON array"),
    ],
    ids=["null", "number", "inputs-string", "parameters-number", "parameters-array"],
)
def test_a_malformed_inference_request_says_what_arrived(body: Any, said: str) -> None:
    from shipyard.core.contract import Contract, Feature
    from shipyard.core.dtypes import DType
    from shipyard.errors import InputError
    from shipyard.serving.oip import decode_rest

    contract = Contract(features=(Feature(name="age", dtype=DType.FLOAT),), task="regression")
    with pytest.raises(InputError, match=said):
        decode_rest(json.dumps(body).encode(), None, contract)
