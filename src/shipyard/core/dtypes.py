"""Value types of features, and the safe, vectorised coercion of a raw column to one.

`coerce` converts only where it is safe (int to float, numeric text to numbers, 'true'/'false'
and 0/1 to booleans; never 'abc' to a number) and reports which values are missing and which
have the wrong type; `beyond_int64` finds the values an integer feature cannot hold (a cast
would wrap them silently: 2**63 becomes -2**63); `finish` gives the column the dtype the model
expects.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import numpy as np

from shipyard.core import objects
from shipyard.core.batch import Array

__all__ = [
    "DTYPE_WORDS",
    "INT64_FLOAT_END",
    "INT64_RANGE",
    "DType",
    "beyond_int64",
    "coerce",
    "finish",
    "plain",
]

INT64_RANGE = (-(2**63), 2**63 - 1)  # what an integer feature holds
# The first float past the range (2**63 - 1 is not a float); a float is an integer feature's
# value only strictly between -INT64_FLOAT_END and INT64_FLOAT_END (see `beyond_int64`).
INT64_FLOAT_END = float(2**63)


class DType(StrEnum):
    """The value types a feature may have."""

    INT = "int64"
    FLOAT = "float64"
    BOOL = "bool"
    STRING = "string"


DTYPE_WORDS = {
    DType.INT: "an integer",
    DType.FLOAT: "a number",
    DType.BOOL: "true or false",
    DType.STRING: "a string",
}
_BOOL_WORDS: dict[Any, bool] = {
    True: True,
    False: False,
    "true": True,
    "false": False,
    "True": True,
    "False": False,
}


def _bool_word(value: Any) -> bool | None:
    """The boolean a value stands for, or None (also for unhashable values such as lists)."""
    try:
        return _BOOL_WORDS.get(value)
    except TypeError:
        return None


def coerce(dtype: DType, raw: Array) -> tuple[Array, Array, Array]:
    """Return (values, missing mask, wrong-type mask), converting only where it is safe."""
    kind = raw.dtype.kind
    n = len(raw)
    none = np.zeros(n, dtype=bool)
    if kind in "US":
        raw = raw.astype(object)
        kind = "O"
    if dtype in (DType.INT, DType.FLOAT):
        if kind in "iu":
            if dtype is DType.FLOAT or (kind == "u" and raw.size and raw.max() > INT64_RANGE[1]):
                # Past int64 (2**63 as uint64): as floats, so `beyond_int64` sees them unwrapped.
                return raw.astype(np.float64), none, none
            return raw.astype(np.int64), none, none
        if kind == "f":
            values = raw.astype(np.float64, copy=False)
            missing = np.isnan(values)
            wrong = none
            if dtype is DType.INT:
                with np.errstate(invalid="ignore"):
                    wrong = ~missing & np.isfinite(values) & (values != np.floor(values))
            return values, missing, wrong
        if kind == "O":
            missing = objects.missing(raw)
            is_bool = _types(raw) == bool  # noqa: E721 -- elementwise over a numpy array of types
            values = objects.to_float(raw)
            wrong = (~missing & np.isnan(values)) | is_bool
            if dtype is DType.INT:
                with np.errstate(invalid="ignore"):
                    wrong |= ~missing & ~wrong & (values != np.floor(values))
            return values, missing, wrong
        return np.full(n, np.nan), none, ~none
    if dtype is DType.BOOL:
        if kind == "b":
            return raw, none, none
        if kind in "iuf":
            numbers = raw.astype(np.float64)
            missing = np.isnan(numbers)
            return numbers == 1, missing, ~missing & (numbers != 0) & (numbers != 1)
        if kind == "O":
            missing = objects.missing(raw)
            words = np.array([_bool_word(value) for value in raw], dtype=object)
            wrong = ~missing & (words == None)  # noqa: E711 -- elementwise over a numpy array
            return words == True, missing, wrong  # noqa: E712 -- elementwise over a numpy array
        return np.zeros(n, dtype=bool), none, ~none
    # DType.STRING
    if kind == "O":
        missing = objects.missing(raw)
        is_str = np.fromiter((isinstance(value, str) for value in raw), dtype=bool, count=n)
        return raw, missing, ~missing & ~is_str
    if kind == "f":
        missing = np.isnan(raw)
        return raw.astype(object), missing, ~missing
    return raw.astype(object), none, ~none


def beyond_int64(values: Array, usable: Array) -> Array:
    """Where an integer feature's values lie outside int64 (infinities included).

    The comparison is in float64, as the values travel: a Python int near 2**63 among text or
    missing values is a float by then, and one that rounds past int64 cannot reach the model.
    A float of exactly -2**63 is refused too: -2**63 - 1 parses to it (JSON parsers turn integers
    past int64 into floats), and the one value it could also be is the very end of the range.

    Args:
        values: the column as `coerce` gave it for `DType.INT` (int64, or float64).
        usable: the values to look at (present and of the right type).
    """
    if values.dtype.kind != "f":
        return np.zeros(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):
        return usable & ((values >= INT64_FLOAT_END) | (values <= -INT64_FLOAT_END))


def _types(raw: Array) -> Array:
    """The Python type of each element of an object array (a C-level map, not a Python loop)."""
    return np.fromiter(map(type, raw), dtype=object, count=len(raw))


def finish(dtype: DType, values: Array, missing: Array) -> Array:
    """The column in the dtype the model expects."""
    if dtype is DType.INT:
        if missing.any():
            return values.astype(np.float64)
        # Rejected rows may hold NaN; they are never predicted, so any integer will do.
        return np.nan_to_num(values).astype(np.int64, copy=False)
    if dtype is DType.FLOAT:
        return values.astype(np.float64, copy=False)
    if dtype is DType.BOOL:
        if missing.any():
            out = values.astype(object)
            out[missing] = None
            return out
        return values.astype(bool, copy=False)
    out = values.astype(object, copy=False)
    if missing.any():
        out = out.copy()
        out[missing] = None
    return out


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds; anything else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
