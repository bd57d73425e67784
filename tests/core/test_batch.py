"""Rows as named numpy columns, and a model's predictions: building, slicing, joining, converting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from shipyard.core.batch import Batch, Predictions
from shipyard.errors import InputError


def test_rows_columns_frames_and_arrow_tables_read_the_same() -> None:
    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": None}]
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    batches = [
        Batch.coerce(rows),
        Batch.coerce({"a": [1, 2], "b": ["x", None]}),
        Batch.coerce(frame),
        Batch.coerce(pa.Table.from_pandas(frame, preserve_index=False)),
    ]
    for batch in batches:
        assert batch.names == ("a", "b") and batch.n_rows == 2
        assert batch.columns["a"].tolist() == [1, 2]
        assert batch.columns["b"].tolist() == ["x", None]
    assert Batch.coerce(batches[0]) is batches[0]


def test_a_key_absent_from_a_record_is_a_missing_value() -> None:
    batch = Batch.from_records([{"a": 1}, {"b": 2.5}])
    assert batch.columns["a"].tolist() == [1, None]
    assert batch.columns["b"].tolist() == [None, 2.5]


def test_booleans_among_numbers_and_nested_lists_stay_values() -> None:
    batch = Batch.from_columns({"n": [True, 2.5], "l": [[1], [2]]})
    assert batch.columns["n"].tolist() == [True, 2.5]
    assert batch.columns["l"].dtype == object and batch.columns["l"].tolist() == [[1], [2]]


def test_pandas_extension_columns_become_plain_numpy_columns() -> None:
    frame = pd.DataFrame(
        {
            "i": pd.array([1, 2], dtype="Int64"),
            "m": pd.array([1, None], dtype="Int64"),
            "c": pd.Categorical(["x", None]),
        }
    )
    columns = Batch.from_pandas(frame).columns
    assert columns["i"].dtype == np.int64
    assert columns["m"].dtype == np.float64 and np.isnan(columns["m"][1])
    assert columns["c"].tolist() == ["x", None]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Batch.from_columns({"a": [1, 2], "b": [1]}), r"columns differ in length \(a=2, b=1\)"),
        (lambda: Batch.from_records([{"a": 1}, 5]), "row 1 is int; expected an object"),
        (lambda: Batch.coerce("text"), "cannot read rows from str"),
        (lambda: Batch({"a": np.zeros((2, 2))}, 2), "column 'a' has shape"),
    ],
)
def test_rows_that_cannot_be_a_batch_are_refused_with_what_arrived(build: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build()  # type: ignore[operator]


def test_select_take_slice_and_concat_keep_rows_and_columns_in_order() -> None:
    batch = Batch.from_columns({"a": [1, 2, 3, 4], "b": [5.0, 6.0, 7.0, 8.0]})
    assert batch.select(["b", "a"]).names == ("b", "a")
    assert batch.take([3, 0]).columns["a"].tolist() == [4, 1]
    part = batch.slice(1, 3)
    assert part.n_rows == 2 and np.shares_memory(part.columns["a"], batch.columns["a"])
    whole = Batch.concat([batch.slice(0, 2), batch.slice(2, 4)])
    assert whole.columns["b"].tolist() == [5.0, 6.0, 7.0, 8.0]
    assert Batch.concat([batch]) is batch


def test_conversions_to_numpy_pandas_and_arrow() -> None:
    batch = Batch.from_columns({"a": [1, 2], "b": [0.5, 1.5]})
    matrix = batch.to_numpy()
    assert matrix.shape == (2, 2) and matrix.dtype == np.float64
    assert Batch.from_columns({}).to_numpy().shape == (0, 0)
    assert batch.to_pandas() is batch.to_pandas()
    assert batch.to_arrow().column_names == ["a", "b"]


def test_predictions_give_columns_and_records_with_probabilities_by_class() -> None:
    predictions = Predictions(
        "classification",
        np.array(["no", "yes"], dtype=object),
        np.array([[0.9, 0.1], [0.2, 0.8]]),
        ("no", "yes"),
    )
    assert list(predictions.to_columns()) == ["prediction", "proba_no", "proba_yes"]
    assert predictions.to_records()[1] == {"prediction": "yes", "probabilities": {"no": 0.2, "yes": 0.8}}
    assert predictions.to_pandas().shape == (2, 3)
    assert Predictions("regression", np.array([1.5])).to_records() == [{"prediction": 1.5}]


def test_probabilities_must_match_the_rows_and_classes() -> None:
    with pytest.raises(ValueError, match=r"do not match 2 rows and classes \('a',\)"):
        Predictions("classification", np.array(["a", "a"]), np.ones((2, 2)), ("a",))


def test_empty_predictions_have_the_model_s_shape() -> None:
    regression = Predictions.empty(None)
    assert (regression.task, regression.n_rows, regression.probabilities) == ("regression", 0, None)
    classified = Predictions.empty(["a", "b"])
    assert classified.probabilities is not None and classified.probabilities.shape == (0, 2)
    assert Predictions.empty(["a", "b"], scores=False).probabilities is None


def test_predictions_slice_take_and_concat_keep_their_probabilities() -> None:
    predictions = Predictions("classification", np.array([0, 1, 1]), np.eye(3)[:, :2], (0, 1))
    assert predictions.take([2, 0]).values.tolist() == [1, 0]
    parts = [predictions.slice(0, 1), predictions.slice(1, 3)]
    whole = Predictions.concat(parts)
    assert whole.values.tolist() == [0, 1, 1]
    assert whole.probabilities is not None and whole.probabilities.tolist() == np.eye(3)[:, :2].tolist()
    assert Predictions.concat([predictions]) is predictions
