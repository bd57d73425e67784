"""Explain requests and answers on the wire: our body and KServe v1's read with their options,
bad bodies refused saying what was expected, answers encoded per row, the OIP's FP64 tensors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pytest

from shipyard.core.batch import Predictions
from shipyard.core.contract import Contract, Feature
from shipyard.core.dtypes import DType
from shipyard.errors import InputError, UnsupportedExplanationError
from shipyard.registry.records import ModelVersion
from shipyard.serving.explain_payloads import (
    EXPLAIN_TENSORS,
    decode_explain,
    decode_kserve,
    encode_explained,
    encode_kserve,
    explanation_parameters,
    explanation_tensors,
)
from shipyard.serving.explaining import ExplainAsk, Explained
from shipyard.serving.served import Answer

CONTRACT = Contract(
    features=(
        Feature(name="age", dtype=DType.INT, min=18, max=90),
        Feature(name="country", dtype=DType.STRING, categories=("DE", "FR")),
    ),
    task="classification",
    classes=(0, 1),
)
ROWS = [{"age": 30, "country": "DE"}, {"age": 40, "country": "FR"}]
VERSION = ModelVersion(
    name="credit",
    version=3,
    status="ready",
    flavor="sklearn",
    artifact_digest="0" * 64,
    artifact_size=1,
    contract=CONTRACT,
    profile=None,
    metrics={},
    lineage={},
    description="",
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def explained(rows: int = 2) -> Explained:
    """A classifier's answer of `rows` rows explained in log-odds of both classes."""
    predictions = Predictions(
        "classification",
        np.array([0, 1][:rows]),
        np.array([[0.8, 0.2], [0.3, 0.7]][:rows]).reshape(rows, 2),
        (0, 1),
    )
    explanation: dict[str, Any] = {
        "method": "tree_shap",
        "space": "log_odds",
        "exact": True,
        "features": ["age", "country"],
        "outputs": ["0", "1"],
        "attributions": [[[0.1, -0.1], [None, 0.3]], [[0.5, -0.5], [0.25, -0.25]]][:rows],
        "base_values": [[0.0, 1.0], [0.0, 1.0]][:rows],
        "output_values": [[0.1, 1.2], [0.75, 0.25]][:rows],
        "additivity_error": [0.0, 1e-9][:rows],
        "top_features": [[{"feature": "age", "value": 30, "attribution": 0.1}], []][:rows],
    }
    if rows == 0:
        explanation = {"method": None, "rows": 0}
    return Explained(Answer("req-1", VERSION, predictions), explanation, ("age", "country"))


@pytest.mark.parametrize(
    ("body", "kind"),
    [([], "array"), ("rows", "string"), (3, "number"), (None, "null"), (True, "boolean")],
    ids=repr,
)
def test_our_body_must_be_an_object(body: Any, kind: str) -> None:
    with pytest.raises(
        InputError, match=rf"the request body is a JSON {kind}; expected an object with one of \['instances'"
    ):
        decode_explain(body, CONTRACT)


@pytest.mark.parametrize(
    "body",
    [{}, {"top": 3}, {"instances": ROWS, "inputs": {"age": [1]}}, {"instances": ROWS, "explain": True}],
    ids=["empty", "options-only", "two-formats", "unknown-key"],
)
def test_our_body_needs_exactly_one_format_and_no_unknown_keys(body: Any) -> None:
    with pytest.raises(
        InputError,
        match=r"expected exactly one of \['instances', 'inputs', 'dataframe_split', 'dataframe_records'\]",
    ):
        decode_explain(body, CONTRACT)


def test_our_body_reads_any_of_predicts_formats_and_the_options() -> None:
    by_rows = decode_explain({"instances": ROWS, "method": "exact", "output": 1, "top": 2}, CONTRACT)
    split = {"columns": ["age", "country"], "data": [[30, "DE"], [40, "FR"]]}
    by_split = decode_explain({"dataframe_split": split, "params": {}}, CONTRACT)
    by_records = decode_explain({"dataframe_records": ROWS}, CONTRACT)
    for columns, n, _ in (by_rows, by_split, by_records):
        assert n == 2
        assert list(columns["age"]) == [30, 40] and list(columns["country"]) == ["DE", "FR"]
    assert by_rows[2] == ExplainAsk(method="exact", output="1", top=2)
    assert by_split[2] == ExplainAsk()


def test_options_of_the_wrong_type_or_method_are_refused_in_our_body_and_kserves() -> None:
    for decode in (decode_explain, decode_kserve):
        with pytest.raises(InputError, match="'top' of the body is 0"):
            decode({"instances": ROWS, "top": 0}, CONTRACT)
        with pytest.raises(UnsupportedExplanationError, match="'method' of the body is 'kernel'"):
            decode({"instances": ROWS, "method": "kernel"}, CONTRACT)


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ([], "is a JSON array"),
        ({}, r"has keys \[\]"),
        ({"inputs": ROWS}, r"has keys \['inputs'\]"),
        ({"instances": ROWS, "id": 1}, r"has keys \['id', 'instances'\]"),
    ],
    ids=["array", "empty", "no-instances", "unknown-key"],
)
def test_kserves_body_is_instances_and_the_options(body: Any, shown: str) -> None:
    with pytest.raises(InputError, match=rf"the request body {shown}; expected KServe v1's"):
        decode_kserve(body, CONTRACT)


def test_kserves_body_reads_its_rows() -> None:
    columns, n, ask = decode_kserve({"instances": ROWS, "output": "1"}, CONTRACT)
    assert n == 2 and list(columns["age"]) == [30, 40] and ask.output == "1"


def test_our_answer_is_predicts_plus_the_explanation() -> None:
    answer = encode_explained(explained(), "credit")
    assert answer["request_id"] == "req-1" and answer["model"] == "credit" and answer["version"] == 3
    assert answer["predictions"] == [0, 1]
    assert answer["probabilities"] == [{"0": 0.8, "1": 0.2}, {"0": 0.3, "1": 0.7}]
    assert answer["explanation"] == explained().explanation
    orjson.dumps(answer)  # JSON-safe


def test_kserves_answer_has_one_explanation_per_row_by_output_and_feature() -> None:
    answer = encode_kserve(explained(), "credit")
    assert (answer["method"], answer["space"], answer["exact"]) == ("tree_shap", "log_odds", True)
    assert answer["features"] == ["age", "country"] and answer["outputs"] == ["0", "1"]
    first, second = answer["explanations"]
    assert first["prediction"] == 0 and first["probabilities"] == {"0": 0.8, "1": 0.2}
    assert first["attributions"] == {"0": {"age": 0.1, "country": None}, "1": {"age": -0.1, "country": 0.3}}
    assert second["base_values"] == {"0": 0.0, "1": 1.0}
    assert second["output_values"] == {"0": 0.75, "1": 0.25}
    assert second["additivity_error"] == 1e-9 and second["top_features"] == []
    orjson.dumps(answer)


def test_kserves_answer_of_no_rows_has_the_contracts_features_and_no_explanations() -> None:
    answer = encode_kserve(explained(0), "credit")
    assert answer["explanations"] == [] and answer["features"] == ["age", "country"]
    assert answer["outputs"] == [] and answer["method"] is None


def test_the_oip_tensors_are_fp64_in_the_order_and_shapes_named() -> None:
    tensors = explanation_tensors(explained())
    assert tuple(t[0] for t in tensors) == EXPLAIN_TENSORS
    shapes = {name: shape for name, _, shape, _, _ in tensors}
    assert shapes == {
        "attributions": [2, 2, 2],
        "base_values": [2, 2],
        "output_values": [2, 2],
        "additivity_error": [2],
    }
    for name, datatype, shape, data, parameters in tensors:
        assert datatype == "FP64" and parameters == {}
        assert data.dtype == np.float64 and list(data.shape) == shape, name
    attributions = tensors[0][3]
    assert np.isnan(attributions[0, 1, 0])  # a missing value is NaN
    assert attributions[0, 1, 1] == 0.3 and attributions[1, 0, 0] == 0.5


def test_the_oip_tensors_of_no_rows_are_empty_with_the_features_axis_kept() -> None:
    tensors = explanation_tensors(explained(0))
    assert [t[2] for t in tensors] == [[0, 2, 0], [0, 0], [0, 0], [0]]
    assert all(t[3].size == 0 and t[3].dtype == np.float64 for t in tensors)


def test_the_oip_parameters_are_strings_with_the_axes_as_json_lists() -> None:
    parameters = explanation_parameters(explained())
    assert parameters == {
        "method": "tree_shap",
        "space": "log_odds",
        "exact": "true",
        "features": '["age","country"]',
        "outputs": '["0","1"]',
    }
    empty = explanation_parameters(explained(0))
    assert empty == {
        "method": "",
        "space": "",
        "exact": "false",
        "features": '["age","country"]',
        "outputs": "[]",
    }
