"""Value types of features, and the safe, vectorised coercion of a raw column to one.

`coerce` converts only where it is safe (int to float, numeric text to numbers, 'true'/'false'
and 0/1 to booleans; never 'abc' to a number) and reports which values are missing and which
have the wrong type; `finish` gives the column the dtype the model expects.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from shipyard.core.batch import Array

__all__ = ["DTYPE_WORDS", "DType", "coerce", "finish", "plain"]


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
            values = raw.astype(np.float64) if dtype is DType.FLOAT else raw.astype(np.int64)
            return values, none, none
        if kind == "f":
            values = raw.astype(np.float64, copy=False)
            missing = np.isnan(values)
            wrong = none
            if dtype is DType.INT:
                with np.errstate(invalid="ignore"):
                    wrong = ~missing & np.isfinite(values) & (values != np.floor(values))
            return values, missing, wrong
        if kind == "O":
            missing = pd.isna(raw)
            is_bool = _types(raw) == bool  # noqa: E721 -- elementwise over a numpy array of types
            values = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
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
            missing = pd.isna(raw)
            mapped = pd.Series(raw, dtype=object).map(_BOOL_WORDS)
            wrong = ~missing & mapped.isna().to_numpy()
            return mapped.fillna(False).to_numpy(dtype=bool), missing, wrong
        return np.zeros(n, dtype=bool), none, ~none
    # DType.STRING
    if kind == "O":
        missing = pd.isna(raw)
        if pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty"):
            return raw, missing, none
        is_str = _types(raw) == str  # noqa: E721 -- elementwise over a numpy array of types
        return raw, missing, ~missing & ~is_str
    if kind == "f":
        missing = np.isnan(raw)
        return raw.astype(object), missing, ~missing
    return raw.astype(object), none, ~none


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
