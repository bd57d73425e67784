"""What a column of Python objects holds: missing values, numbers, categories — without pandas.

Requests arrive as JSON, so their columns are numpy object arrays of None, numbers, text,
booleans and, from hostile clients, lists and objects. These functions read such columns with
numpy and the standard library only, so that serving a model fitted on arrays needs no pandas
(a baked image without it is about 80 MB smaller). They keep the meanings the contract has always
had: `missing` is what pandas calls missing, and `to_float` reads what `pandas.to_numeric`
reads, refusing (as NaN) Python-only spellings such as `1_000` and non-ASCII digits.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import numpy as np

from shipyard.core.batch import Array

__all__ = ["counts", "is_in", "is_missing", "missing", "to_float"]

# pandas' own missing markers, known by their type's name so that pandas need not be imported.
_PANDAS_MISSING = frozenset({"NAType", "NaTType"})


def is_missing(value: Any) -> bool:
    """None, a float NaN (numpy's too), a Decimal NaN, NaT, or pandas' NA."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    if isinstance(value, Decimal):
        return value.is_nan()
    if isinstance(value, np.datetime64 | np.timedelta64):
        return bool(np.isnat(value))
    return type(value).__name__ in _PANDAS_MISSING


def _number(value: Any) -> float:
    """The number a value stands for, or NaN (text that is no number, lists, objects, None)."""
    if isinstance(value, str | bytes):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        if not text.isascii() or "_" in text:  # float() reads '1_000' and '١٢'; the contract does not
            return math.nan
        try:
            return float(text)
        except ValueError:
            return math.nan
    if isinstance(value, bool | int | float | Decimal | np.integer | np.floating | np.bool_):
        try:
            return float(value)
        except OverflowError:  # an int past float's range: infinite, refused as out of range later
            return math.inf if value > 0 else -math.inf
    return math.nan


def _elementwise(fn: Callable[[Any], Any], raw: Array, dtype: type) -> Array:
    """`fn` of each element of an object array (numpy's C loop over a Python function)."""
    return np.fromiter(map(fn, raw), dtype=dtype, count=len(raw))


def missing(raw: Array) -> Array:
    """The mask of missing values of an object array."""
    return _elementwise(is_missing, raw, bool)


def to_float(raw: Array) -> Array:
    """An object array as float64: numbers and numeric text read, everything else NaN."""
    return _elementwise(_number, raw, np.float64)


def is_in(raw: Array, allowed: Iterable[Any]) -> Array:
    """Where an object array's values are among `allowed` (unhashable values never are)."""
    known = set(allowed)

    def member(value: Any) -> bool:
        try:
            return value in known
        except TypeError:
            return False

    return _elementwise(member, raw, bool)


def counts(values: Iterable[Any]) -> dict[Any, int]:
    """How often each value occurs, the most frequent first (ties in order of appearance)."""
    return dict(Counter(values).most_common())
