"""Object columns read without pandas mean what they meant with it: pandas is the oracle."""

from __future__ import annotations

import decimal
import math

import numpy as np
import pandas as pd
import pytest

from shipyard.core import objects

# What JSON and Python callers send, hostile values included.
VALUES = [
    " 1.5 ",
    "1e3",
    "inf",
    "-Infinity",
    "nan",
    "0x10",
    "",
    "  ",
    "abc",
    "+5",
    "5.",
    ".5",
    "1,5",
    "1e400",
    b"12",
    decimal.Decimal("2.5"),
    decimal.Decimal("NaN"),
    True,
    False,
    7,
    -3,
    2**70,
    np.float32(1.5),
    np.int64(3),
    np.bool_(True),
    None,
    float("nan"),
    np.float64("nan"),
    pd.NA,
    pd.NaT,
    [1],
    {"a": 1},
    (1, 2),
    object(),
]


def _column(values: list[object]) -> np.ndarray:
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


def test_missing_is_what_pandas_calls_missing() -> None:
    column = _column(VALUES)
    assert objects.missing(column).tolist() == pd.isna(column).tolist()


def test_numbers_are_what_pandas_reads() -> None:
    column = _column(VALUES)
    expected = pd.to_numeric(pd.Series(column, dtype=object), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    np.testing.assert_array_equal(objects.to_float(column), expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1_000", math.nan),  # float() reads it; pandas and the contract do not
        ("١٢", math.nan),  # Arabic-Indic digits: float() reads them
        (complex(1, 2), math.nan),  # pandas drops the imaginary part with a warning
        (2**2000, math.inf),  # pandas raises OverflowError; infinite is refused as out of range
        (-(2**2000), -math.inf),
    ],
    ids=["underscore", "arabic-digits", "complex", "huge", "minus-huge"],
)
def test_where_python_and_pandas_differ_the_contract_refuses(value: object, expected: float) -> None:
    got = objects.to_float(_column([value]))[0]
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def test_membership_and_counts() -> None:
    column = _column(["DE", "FR", [1], None, "DE", 1])
    assert objects.is_in(column, ("DE", 1.0)).tolist() == [True, False, False, False, True, True]
    assert objects.counts(["b", "a", "b", "c", "a", "b"]) == {"b": 3, "a": 2, "c": 1}
    assert list(objects.counts(["x", "y"])) == ["x", "y"]


def test_the_contract_path_imports_no_pandas() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import shipyard.core.contract, shipyard.core.profile; "
        "sys.exit(1 if 'pandas' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
