"""The client's gRPC tensors: one typed tensor per column, typed by its values, and an answer's
tensors read back (predictions, probabilities by class, every FP64 tensor)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from shipyard.errors import InputError
from shipyard.serving import oip_v2_pb2 as pb
from shipyard.serving.client_tensors import infer_request, read_tensors


def tensors(request: Any) -> dict[str, tuple[str, list[int], list[Any]]]:
    """Each input's datatype, shape and values."""
    found = {}
    for t in request.inputs:
        field = {"BOOL": "bool", "INT64": "int64", "FP64": "fp64", "BYTES": "bytes"}[t.datatype]
        found[t.name] = (t.datatype, list(t.shape), list(getattr(t.contents, f"{field}_contents")))
    return found


def test_columns_become_tensors_typed_by_their_values() -> None:
    rows = [
        {"age": 41, "income": 5200.0, "country": "DE", "owner": True, "debt": None, "score": 3},
        {"age": 63, "income": None, "country": "FR", "owner": False, "debt": 0.25, "score": 2.5},
    ]
    request = infer_request("credit", rows, "r-7")
    assert request.model_name == "credit" and request.id == "r-7"
    found = tensors(request)
    assert list(found) == ["age", "income", "country", "owner", "debt", "score"]
    assert found["age"] == ("INT64", [2], [41, 63])
    assert found["country"] == ("BYTES", [2], [b"DE", b"FR"])
    assert found["owner"] == ("BOOL", [2], [True, False])
    assert found["score"] == ("FP64", [2], [3.0, 2.5])  # an integer among floats is a number
    for name, first, second in (("income", 5200.0, None), ("debt", None, 0.25)):
        datatype, shape, values = found[name]
        assert (datatype, shape) == ("FP64", [2])
        for value, expected in zip(values, (first, second), strict=True):
            assert np.isnan(value) if expected is None else value == expected


def test_a_frame_and_a_mapping_of_columns_give_the_same_request() -> None:
    frame = pd.DataFrame({"x": [1.5, 2.5], "n": [1, 2], "c": ["a", "b"]})
    by_frame = infer_request("m", frame, None)
    by_columns = infer_request("m", {"x": [1.5, 2.5], "n": [1, 2], "c": ["a", "b"]}, None)
    assert tensors(by_frame) == tensors(by_columns)
    assert tensors(by_frame)["n"][0] == "INT64" and tensors(by_frame)["c"][0] == "BYTES"
    assert by_frame.id == ""


def test_values_that_are_neither_numbers_nor_text_are_sent_as_text() -> None:
    found = tensors(infer_request("m", {"mixed": ["a", 3]}, None))
    assert found["mixed"] == ("BYTES", [2], [b"a", b"3"])


@pytest.mark.parametrize("missing", [None, float("nan")], ids=["none", "nan"])
def test_a_missing_value_in_a_text_column_is_refused_not_sent_as_its_text(missing: Any) -> None:
    with pytest.raises(InputError, match=r"column 'country' holds text and a missing value.*http\(s\)://"):
        infer_request("m", {"country": ["DE", missing], "age": [1, 2]}, None)


def test_rows_that_are_not_rows_are_refused() -> None:
    with pytest.raises(InputError, match="cannot read rows from int"):
        infer_request("m", 3, None)


def output(response: Any, name: str, datatype: str, raw: bytes, **parameters: str) -> None:
    tensor = response.outputs.add(name=name, datatype=datatype)
    for key, value in parameters.items():
        tensor.parameters[key].string_param = value
    response.raw_output_contents.append(raw)


def fp64(values: Any) -> bytes:
    return np.asarray(values, dtype="<f8").tobytes()


def test_an_answer_gives_predictions_probabilities_by_class_and_every_fp64_tensor() -> None:
    response = pb.ModelInferResponse(model_name="credit", model_version="2", id="r-1")
    output(response, "prediction", "INT64", np.array([0, 1], dtype="<i8").tobytes())
    classes = orjson.dumps([0, 1]).decode()
    output(response, "probabilities", "FP64", fp64([[0.9, 0.1], [0.2, 0.8]]), classes=classes)
    output(response, "attributions", "FP64", fp64(np.arange(8.0)))
    output(response, "additivity_error", "FP64", fp64([0.0, 1e-9]))
    predictions, probabilities, found = read_tensors(response)
    assert predictions == [0, 1]
    assert probabilities == [{"0": 0.9, "1": 0.1}, {"0": 0.2, "1": 0.8}]
    assert set(found) == {"probabilities", "attributions", "additivity_error"}
    np.testing.assert_array_equal(found["attributions"], np.arange(8.0))
    assert found["attributions"].dtype == np.float64
    np.testing.assert_array_equal(found["additivity_error"], [0.0, 1e-9])


def test_a_regressors_answer_has_no_probabilities_and_text_labels_are_read() -> None:
    response = pb.ModelInferResponse()
    output(response, "prediction", "FP64", fp64([1.5, -2.0]))
    predictions, probabilities, found = read_tensors(response)
    assert predictions == [1.5, -2.0] and probabilities is None
    assert list(found) == ["prediction"]
    labelled = pb.ModelInferResponse()
    raw = b"".join(struct.pack("<I", len(s)) + s for s in (b"yes", b"no"))
    output(labelled, "prediction", "BYTES", raw)
    assert read_tensors(labelled) == (["yes", "no"], None, {})
