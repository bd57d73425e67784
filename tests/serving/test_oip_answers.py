"""The Open Inference Protocol's answers: model metadata, and output tensors over REST and gRPC."""

from __future__ import annotations

import json
import struct

import numpy as np
import orjson
import pytest

from shipyard.core.batch import Predictions
from shipyard.core.contract import Contract, Feature
from shipyard.core.dtypes import DType
from shipyard.errors import InputError
from shipyard.serving.oip_answers import encode_grpc, encode_rest, model_metadata, to_raw

CONTRACT = Contract(
    features=(
        Feature(name="age", dtype=DType.INT),
        Feature(name="income", dtype=DType.FLOAT),
        Feature(name="country", dtype=DType.STRING),
    ),
    task="classification",
    classes=(0, 1),
)
PREDICTIONS = Predictions(
    "classification", np.array([1, 0]), np.array([[0.2, 0.8], [0.9, 0.1]]), classes=(0, 1)
)


def test_metadata_names_each_feature_the_outputs_and_the_served_version() -> None:
    meta = model_metadata(CONTRACT, "credit", 3, "sklearn")
    assert (meta["name"], meta["versions"], meta["platform"]) == ("credit", ["3"], "shipyard-sklearn")
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("age", "INT64"),
        ("income", "FP64"),
        ("country", "BYTES"),
    ]
    assert meta["outputs"] == [
        {"name": "prediction", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]},
    ]
    regressor = Contract(features=CONTRACT.features, task="regression")
    assert model_metadata(regressor, "price", 1, "xgboost")["outputs"] == [
        {"name": "prediction", "datatype": "FP64", "shape": [-1]}
    ]


def test_a_json_answer_holds_labels_and_probabilities_with_their_classes() -> None:
    body, header = encode_rest(
        PREDICTIONS, model="credit", version=3, request_id="r1", wanted=(), binary=False
    )
    assert header is None
    answer = orjson.loads(body)
    assert (answer["model_name"], answer["model_version"], answer["id"]) == ("credit", "3", "r1")
    label, probabilities = answer["outputs"]
    assert label == {"name": "prediction", "datatype": "INT64", "shape": [2], "data": [1, 0]}
    assert probabilities["shape"] == [2, 2] and probabilities["data"] == [0.2, 0.8, 0.9, 0.1]
    assert json.loads(probabilities["parameters"]["classes"]) == [0, 1]


def test_a_binary_answer_is_a_json_header_then_the_raw_tensors() -> None:
    body, header = encode_rest(
        PREDICTIONS, model="credit", version=3, request_id="r1", wanted=("prediction",), binary=True
    )
    assert header is not None
    head = orjson.loads(body[:header])
    [label] = head["outputs"]
    assert label["parameters"] == {"binary_data_size": 16}
    assert np.frombuffer(body[header:], dtype="<i8").tolist() == [1, 0]


def test_a_grpc_answer_carries_raw_contents_as_triton_sends_them() -> None:
    response = encode_grpc(PREDICTIONS, model="credit", version=3, request_id="r1", wanted=())
    assert (response.model_name, response.model_version, response.id) == ("credit", "3", "r1")
    assert [o.name for o in response.outputs] == ["prediction", "probabilities"]
    assert json.loads(response.outputs[1].parameters["classes"].string_param) == [0, 1]
    assert np.frombuffer(response.raw_output_contents[1], dtype="<f8").tolist() == [0.2, 0.8, 0.9, 0.1]


def test_labels_picked_from_the_classes_as_objects_keep_the_classes_datatype() -> None:
    """The ONNX flavor (and any flavor taking each row's most probable class) gives integer labels
    as Python objects: they are INT64, as the metadata says, over JSON, binary and gRPC alike."""
    objects = Predictions(
        "classification",
        np.array([1, 0], dtype=object),
        PREDICTIONS.probabilities,
        classes=(0, 1),
    )
    body, _ = encode_rest(objects, model="credit", version=3, request_id="r1", wanted=(), binary=False)
    assert orjson.loads(body)["outputs"][0] == {
        "name": "prediction",
        "datatype": "INT64",
        "shape": [2],
        "data": [1, 0],
    }
    body, header = encode_rest(objects, model="credit", version=3, request_id="r1", wanted=(), binary=True)
    assert header is not None and orjson.loads(body[:header])["outputs"][0]["datatype"] == "INT64"
    assert np.frombuffer(body[header : header + 16], dtype="<i8").tolist() == [1, 0]
    response = encode_grpc(objects, model="credit", version=3, request_id="r1", wanted=())
    assert response.outputs[0].datatype == "INT64"
    assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist() == [1, 0]
    flags = Predictions(
        "classification", np.array([True], dtype=object), np.array([[0.1, 0.9]]), (False, True)
    )
    assert (
        orjson.loads(encode_rest(flags, model="m", version=1, request_id="r", wanted=(), binary=False)[0])[
            "outputs"
        ][0]["datatype"]
        == "BOOL"
    )


def test_an_output_the_model_does_not_return_is_refused_naming_those_it_does() -> None:
    with pytest.raises(
        InputError, match="do not exist; this model returns \\['prediction', 'probabilities'\\]"
    ):
        encode_grpc(PREDICTIONS, model="credit", version=3, request_id="r1", wanted=("scores",))


def test_string_labels_travel_as_length_prefixed_bytes() -> None:
    assert to_raw(np.array(["yes", "né"], dtype=object), "BYTES") == (
        struct.pack("<I", 3) + b"yes" + struct.pack("<I", 3) + "né".encode()
    )
    assert to_raw(np.array([True, False]), "BOOL") == b"\x01\x00"
    labels = Predictions("classification", np.array(["no", "yes"], dtype=object))
    body, _ = encode_rest(labels, model="m", version=1, request_id="r", wanted=(), binary=False)
    assert orjson.loads(body)["outputs"] == [
        {"name": "prediction", "datatype": "BYTES", "shape": [2], "data": ["no", "yes"]}
    ]
