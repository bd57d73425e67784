"""Plain data for JSON and for databases that refuse NaN: the one conversion every result uses."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["json_safe"]


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities as None, numpy scalars as Python ones, tuples as lists.

    A metric or statistic that is not defined on the rows (R2 of one row, a p-value of an empty
    window) is then absent rather than a NaN that JSON and PostgreSQL refuse.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
