"""One feature's checks over a column: integers past int64, infinity, lists where one value belongs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from shipyard import Batch, Contract, DType, Feature


@pytest.mark.parametrize("rows", [2, 5000], ids=["row-wise", "column-wise"])
@pytest.mark.parametrize(
    "column",
    [
        np.array([3.0, 1e308]),
        np.array([3, 2**63], dtype=np.uint64),
        np.array([3.0, float("inf")]),
        np.array([3.0, -1e300]),
        np.array([3, 10**24], dtype=object),
        np.array([3, "9223372036854775808"], dtype=object),
        np.array([3.0, float(-(2**63) - 1)]),  # what a JSON parser makes of -2**63 - 1
    ],
    ids=["1e308", "2**63 uint64", "inf", "-1e300", "10**24", "text 2**63", "-2**63-1 as a float"],
)
def test_an_integer_past_int64_is_a_violation_never_a_wrapped_value(rows: int, column: np.ndarray) -> None:
    """What batch scoring reads from Parquet or CSV (uint64, float64 columns) and what JSON brings:
    a cast to int64 would hand the model -9223372036854775808."""
    contract = Contract(
        features=(Feature(name="n", dtype=DType.INT), Feature(name="m", dtype=DType.INT)),
        task="regression",
    )
    values = np.resize(column, rows)  # the bad value at every odd row
    batch = Batch({"n": values, "m": np.arange(rows)}, rows)
    result = contract.validate(batch)
    assert [v.row for v in result.violations] == list(range(1, rows, 2))
    assert {v.feature for v in result.violations} == {"n"}
    assert "outside the range of an integer feature (int64)" in result.violations[0].reason
    assert "9223372036854775807" in result.violations[0].reason
    assert result.batch.columns["n"][0] == 3


@pytest.mark.parametrize("rows", [2, 5000], ids=["row-wise", "column-wise"])
@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), "inf"], ids=["inf", "-inf", "text inf"])
def test_infinity_in_a_float_feature_is_a_violation_on_every_path(rows: int, bad: Any) -> None:
    """No range is set, so only the finiteness rule can stop it; batch and serving share it."""
    contract = Contract(
        features=(Feature(name="x", dtype=DType.FLOAT), Feature(name="m", dtype=DType.FLOAT)),
        task="regression",
    )
    values = np.resize(np.array([1.5, bad], dtype=object if isinstance(bad, str) else np.float64), rows)
    result = contract.validate(Batch({"x": values, "m": np.ones(rows)}, rows))
    assert [v.row for v in result.violations] == list(range(1, rows, 2))
    assert result.violations[0].reason == "expected a finite number, not infinity"


def test_lists_and_objects_where_one_value_belongs_are_refused_by_row_for_every_type() -> None:
    """Equal-length lists would become a second dimension; each stays one value to refuse."""
    contract = Contract(
        features=tuple(
            Feature(name=t.value, dtype=t) for t in (DType.INT, DType.FLOAT, DType.BOOL, DType.STRING)
        ),
        task="regression",
    )
    nested = {f.name: [[1, 2], {"k": 1}] for f in contract.features}
    result = contract.validate(Batch.from_columns(nested))
    assert sorted((v.row, v.feature) for v in result.violations) == sorted(
        (row, f.name) for row in (0, 1) for f in contract.features
    )
