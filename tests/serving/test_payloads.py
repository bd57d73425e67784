"""Our REST API's and MLflow's bodies: read into columns, refused by what was expected, answered."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from shipyard.core.contract import Contract, Feature
from shipyard.core.dtypes import DType
from shipyard.errors import InputError
from shipyard.serving.payloads import (
    decode_mlflow,
    decode_mlflow_csv,
    decode_ours,
    parse_json,
    rows_to_columns,
)

CONTRACT = Contract(
    features=(
        Feature(name="age", dtype=DType.INT, min=18, max=90),
        Feature(name="country", dtype=DType.STRING, categories=("DE", "FR")),
    ),
    task="classification",
    classes=(0, 1),
)


def test_rows_and_columns_read_the_same() -> None:
    rows = decode_ours({"instances": [{"age": 30, "country": "DE"}, {"age": 40, "country": "FR"}]}, CONTRACT)
    columns = decode_ours({"inputs": {"age": [30, 40], "country": ["DE", "FR"]}}, CONTRACT)
    assert rows == columns == ({"age": [30, 40], "country": ["DE", "FR"]}, 2)


def test_a_feature_absent_from_some_rows_is_missing_there_and_absent_from_all_is_left_out() -> None:
    columns, n = rows_to_columns([{"age": 30}, {"age": 40, "country": "FR"}], CONTRACT, where="'instances'")
    assert (columns, n) == ({"age": [30, 40], "country": [None, "FR"]}, 2)
    assert "country" not in rows_to_columns([{"age": 30}], CONTRACT, where="'instances'")[0]


def test_rows_as_lists_follow_the_contracts_order() -> None:
    assert decode_ours({"instances": [[30, "DE"]]}, CONTRACT) == ({"age": [30], "country": ["DE"]}, 1)
    with pytest.raises(
        InputError, match=r"row 0 of 'instances' is a list of 1 values; .* \['age', 'country'\]"
    ):
        decode_ours({"instances": [[30]]}, CONTRACT)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([1, 2], "is a JSON array; expected an object with 'instances'"),
        ({"instances": [], "inputs": {}}, "expected exactly one of 'instances'"),
        ({"rows": []}, "has keys ['rows']"),
        ({"inputs": {"age": [1, 2], "country": ["DE"]}}, "differ in length"),
        ({"inputs": {"age": 1}}, "column 'age' of 'inputs' is a JSON number; expected a list"),
        ({"instances": [{"age": 1}, "x"]}, "row 1 of 'instances' is a JSON string"),
    ],
)
def test_a_malformed_body_of_ours_says_what_was_expected(body: Any, words: str) -> None:
    with pytest.raises(InputError, match=words.replace("[", r"\[").replace("]", r"\]")):
        decode_ours(body, CONTRACT)


def test_every_mlflow_format_reads_the_same_columns() -> None:
    expected = ({"age": [30], "country": ["DE"]}, 1)
    split = {"dataframe_split": {"columns": ["age", "country"], "data": [[30, "DE"]]}}
    assert decode_mlflow(split, CONTRACT) == expected
    assert decode_mlflow({"dataframe_records": [{"age": 30, "country": "DE"}]}, CONTRACT) == expected
    assert decode_mlflow({"instances": [{"age": 30, "country": "DE"}]}, CONTRACT) == expected
    assert decode_mlflow({"inputs": {"age": [30], "country": ["DE"]}, "params": {}}, CONTRACT) == expected


def test_mlflow_bodies_with_no_format_or_two_are_refused() -> None:
    with pytest.raises(InputError, match="expected exactly one of"):
        decode_mlflow({"instances": [], "dataframe_records": []}, CONTRACT)
    with pytest.raises(InputError, match="row 0 of 'dataframe_split.data' is a list of 1 values"):
        decode_mlflow({"dataframe_split": {"columns": ["age", "country"], "data": [[1]]}}, CONTRACT)


def test_a_csv_body_is_read_by_its_header() -> None:
    columns, n = decode_mlflow_csv(b"age,country\n30,DE\n40,FR\n")
    assert n == 2
    assert np.asarray(columns["age"]).tolist() == [30, 40]
    assert np.asarray(columns["country"]).tolist() == ["DE", "FR"]


def test_json_is_parsed_and_a_bare_nan_is_named() -> None:
    assert parse_json(b'{"a": [1]}') == {"a": [1]}
    with pytest.raises(InputError, match="NaN"):
        parse_json(b'{"a": [NaN]}')
