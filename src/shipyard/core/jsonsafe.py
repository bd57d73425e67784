"""Plain data for JSON and for databases that refuse NaN: the one conversion every result uses.

Results (metrics, statistics, reports, audit details) take `json_safe(value)`: NaN and infinities
become None. Model parameters, which may hold any object a framework accepts, take
`json_safe(value, keep_nan=True, other=repr)` so that what a parameter was stays readable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["json_safe"]


def json_safe(value: Any, *, keep_nan: bool = False, other: Callable[[Any], Any] | None = None) -> Any:
    """`value` with NaN and infinities as None, numpy scalars as Python ones, tuples as lists.

    A metric or statistic that is not defined on the rows (R2 of one row, a p-value of an empty
    window) is then absent rather than a NaN that JSON and PostgreSQL refuse.

    Args:
        value: plain data, possibly holding numpy scalars, tuples and non-finite floats.
        keep_nan: keep NaN and infinities as floats (Python's `json` writes them) instead of None.
        other: what becomes of a value that is not plain data (`str`, `repr`); None keeps it.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if keep_nan or math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, keep_nan=keep_nan, other=other) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, keep_nan=keep_nan, other=other) for v in value]
    return value if other is None else other(value)
