"""A contract inferred from training rows: types, ranges, categories and missing-value rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from shipyard.core.batch import Array, Batch, Label, Task
from shipyard.core.contract import MAX_CATEGORIES, Contract, Feature
from shipyard.core.dtypes import DType, coerce, plain
from shipyard.errors import ContractError

__all__ = ["infer_contract"]


def infer_contract(
    data: Batch,
    *,
    task: Task,
    target: str | None = None,
    classes: Sequence[Label] | None = None,
    max_categories: int = MAX_CATEGORIES,
) -> Contract:
    """Infer a contract from training rows (without the target column).

    Defaults are what a production team would choose: a wrong type is always rejected; a
    missing value is rejected unless training data had missing values (then it is passed to
    the model); an out-of-range value or an unseen category is allowed and counted.

    Raises:
        ContractError: a column has a type contracts cannot hold (dates, mixed types, objects).
    """
    if not data.columns:
        raise ContractError("the training data has no feature columns; expected at least one")
    features = [_infer_feature(name, column, max_categories) for name, column in data.columns.items()]
    return Contract(
        features=tuple(features),
        task=task,
        target=target,
        classes=None if classes is None else tuple(plain(c) for c in classes),
    )


def _infer_feature(name: str, column: Array, max_categories: int) -> Feature:
    kind = column.dtype.kind
    if kind == "b":
        dtype = DType.BOOL
    elif kind in "iu":
        dtype = DType.INT
    elif kind == "f":
        dtype = DType.FLOAT
    elif kind in "OUS":
        inferred = pd.api.types.infer_dtype(column, skipna=True)
        mapping = {
            "string": DType.STRING,
            "boolean": DType.BOOL,
            "integer": DType.INT,
            "floating": DType.FLOAT,
            "mixed-integer-float": DType.FLOAT,
            "empty": DType.FLOAT,
        }
        if inferred not in mapping:
            raise ContractError(
                f"training column {name!r} holds {inferred} values; a contract holds int, float, "
                "bool or string features: convert the column before registering"
            )
        dtype = mapping[inferred]
    else:
        raise ContractError(
            f"training column {name!r} has type {column.dtype}; a contract holds int, float, "
            "bool or string features: convert it (e.g. a date to a number) before registering"
        )
    values, missing, wrong = coerce(dtype, column)
    if wrong.any():
        raise ContractError(f"training column {name!r} mixes {dtype} values with others")
    present = values[~missing]
    nullable = bool(missing.any())
    common: dict[str, Any] = {
        "name": name,
        "dtype": dtype,
        "nullable": nullable,
        "on_missing": "pass" if nullable else "reject",
    }
    if dtype in (DType.INT, DType.FLOAT):
        finite = present[np.isfinite(present.astype(np.float64))]
        if len(finite):
            common["min"] = plain(finite.min())
            common["max"] = plain(finite.max())
            median = float(np.median(finite))
            common["impute_value"] = round(median) if dtype is DType.INT else median
        return Feature(**common)
    if dtype is DType.BOOL:
        common["categories"] = (False, True)
        if len(present):
            common["impute_value"] = bool(pd.Series(present).mode().iloc[0])
        return Feature(**common)
    series = pd.Series(present, dtype=object)
    uniques = series.unique()
    if 0 < len(uniques) <= max_categories:
        common["categories"] = tuple(sorted(str(u) for u in uniques))
    if len(present):
        common["impute_value"] = str(series.value_counts().index[0])
    return Feature(**common)
