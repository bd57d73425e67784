"""The feature types: what a column of each is coerced to, and which values are of the wrong type."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard import Batch, Contract, DType
from shipyard.core.dtypes import beyond_int64, coerce, finish, plain


def test_int_is_coerced_to_float_but_text_never_is(contract: Contract) -> None:
    result = contract.validate(
        Batch.from_columns(
            {"age": [1, 2], "income": [1000, 2000], "country": ["DE", "DE"], "vip": [True, True]}
        )
    )
    assert result.ok
    assert result.batch.columns["income"].dtype == np.float64
    bad = contract.validate(Batch.from_records([{"age": 1, "income": "abc", "country": "DE", "vip": True}]))
    assert bad.violations[0].reason == "expected a number"


def test_fractional_value_for_an_integer_feature_is_a_wrong_type(contract: Contract) -> None:
    result = contract.validate(
        Batch.from_records([{"age": 2.5, "income": 1000.0, "country": "DE", "vip": True}])
    )
    assert result.violations[0].reason == "expected an integer"


def test_boolean_is_not_accepted_as_a_number(contract: Contract) -> None:
    result = contract.validate(
        Batch.from_records([{"age": True, "income": 1000.0, "country": "DE", "vip": True}])
    )
    assert [v.feature for v in result.violations] == ["age"]


def test_integers_stay_integers_and_floats_with_fractions_are_the_wrong_type_for_int() -> None:
    values, missing, wrong = coerce(DType.INT, np.array([1, 2, 3]))
    assert values.dtype == np.int64 and not missing.any() and not wrong.any()
    values, missing, wrong = coerce(DType.INT, np.array([1.0, np.nan, 2.5]))
    assert missing.tolist() == [False, True, False]
    assert wrong.tolist() == [False, False, True]


def test_text_numbers_are_read_and_words_and_booleans_are_the_wrong_type_for_float() -> None:
    values, missing, wrong = coerce(DType.FLOAT, np.array(["1.5", None, "abc", True], dtype=object))
    assert values[0] == 1.5
    assert missing.tolist() == [False, True, False, False]
    assert wrong.tolist() == [False, False, True, True]


@pytest.mark.parametrize(
    ("raw", "expected", "wrong"),
    [
        (np.array(["true", "False", "maybe"], dtype=object), [True, False, False], [False, False, True]),
        (np.array([1.0, 0.0, 2.0]), [True, False, False], [False, False, True]),
    ],
)
def test_booleans_are_read_from_words_and_from_zero_and_one(
    raw: np.ndarray, expected: list[bool], wrong: list[bool]
) -> None:
    values, _, bad = coerce(DType.BOOL, raw)
    assert values.tolist() == expected
    assert bad.tolist() == wrong


def test_only_text_is_a_string() -> None:
    _, missing, wrong = coerce(DType.STRING, np.array(["a", None, 3], dtype=object))
    assert missing.tolist() == [False, True, False]
    assert wrong.tolist() == [False, False, True]


def test_values_past_int64_are_found_only_among_floats() -> None:
    values = np.array([1.0, 2.0**63, -(2.0**63), np.inf])
    assert beyond_int64(values, np.ones(4, dtype=bool)).tolist() == [False, True, True, True]
    assert not beyond_int64(np.array([1, 2], dtype=np.int64), np.ones(2, dtype=bool)).any()


def test_finish_gives_the_dtype_the_model_expects_with_missing_values_as_none_or_nan() -> None:
    assert finish(DType.INT, np.array([1.0, 2.0]), np.zeros(2, dtype=bool)).dtype == np.int64
    assert finish(DType.INT, np.array([1.0, np.nan]), np.array([False, True])).dtype == np.float64
    assert finish(DType.BOOL, np.array([True, False]), np.array([False, True])).tolist() == [True, None]
    assert finish(DType.STRING, np.array(["a", "b"], dtype=object), np.array([True, False])).tolist() == [
        None,
        "b",
    ]


def test_plain_turns_numpy_scalars_into_python_values_and_nan_into_none() -> None:
    assert type(plain(np.int64(3))) is int
    assert plain(float("nan")) is None
    assert plain("x") == "x"
