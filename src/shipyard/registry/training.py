"""Reading training data at registration: features and target, task and classes, the profile."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import numpy as np

from shipyard.core.batch import Array, Batch, Label, Task
from shipyard.core.contract import Contract
from shipyard.core.profile import Profile
from shipyard.errors import ContractError

__all__ = ["PROFILE_ROWS", "check_feature_names", "reference_profile", "split_training", "task_and_classes"]

PROFILE_ROWS = 200_000  # rows of training data the reference profile is built from, at most
_REGRESSION_MIN_UNIQUE = 20


def split_training(train_data: Any, target: str | None) -> tuple[Batch | None, Array | None]:
    if train_data is None:
        if target is not None:
            raise ContractError(f"target {target!r} was given without train_data to find it in")
        return None, None
    batch = Batch.coerce(train_data)
    if batch.n_rows == 0:
        raise ContractError("the training data has no rows; expected at least one")
    if target is None:
        return batch, None
    if target not in batch.columns:
        raise ContractError(
            f"target {target!r} is not a column of the training data; it has {list(batch.names)}"
        )
    return batch.select(n for n in batch.names if n != target), batch.columns[target]


def task_and_classes(
    meta: Mapping[str, Any],
    task: Task | None,
    labels: Array | None,
    contract: Contract | None,
) -> tuple[Task, list[Label] | None]:
    resolved = task or cast(Task | None, meta.get("task"))
    if resolved is None and contract is not None:
        resolved = contract.task
    if resolved is None and labels is not None:
        unique = np.unique(labels[~_isnull(labels)])
        numeric = labels.dtype.kind in "iuf"
        integral = numeric and bool(np.all(np.mod(unique.astype(np.float64), 1) == 0))
        many = len(unique) > _REGRESSION_MIN_UNIQUE
        resolved = "regression" if numeric and (many or not integral) else "classification"
    if resolved is None:
        raise ContractError(
            "cannot tell whether the model classifies or regresses; pass task='classification' "
            "or task='regression', or the training data with its target"
        )
    if resolved not in ("classification", "regression"):
        raise ContractError(f"task is {resolved!r}; expected 'classification' or 'regression'")
    if resolved == "regression":
        return resolved, None
    classes = meta.get("classes")
    if classes is None and contract is not None and contract.classes is not None:
        classes = list(contract.classes)
    if classes is None and labels is not None:
        classes = [v.item() if hasattr(v, "item") else v for v in np.unique(labels[~_isnull(labels)])]
    return resolved, None if classes is None else list(classes)


def _isnull(values: Array) -> Array:
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)


def check_feature_names(expected: Iterable[str] | None, contract: Contract) -> None:
    if expected is None:
        return
    expected = list(expected)
    if expected != list(contract.names):
        raise ContractError(
            f"the model was trained on features {expected}, but the contract (from the training "
            f"data) lists {list(contract.names)}; pass the same columns, in the same order, "
            "without the target"
        )


def reference_profile(name: str, contract: Contract, features: Batch, loaded: Any) -> Profile:
    sample = features
    if features.n_rows > PROFILE_ROWS:
        rows = np.random.default_rng(0).choice(features.n_rows, PROFILE_ROWS, replace=False)
        sample = features.take(np.sort(rows))
    validation = contract.validate(sample)
    batch = validation.batch.take(validation.accepted_rows) if not validation.ok else validation.batch
    try:
        predictions = loaded.predict(batch)
    except Exception as exc:
        raise ContractError(
            f"model {name!r} failed to predict its own training data ({exc}); check that "
            "train_data holds the columns the model was trained on"
        ) from None
    return Profile.build(batch, contract=contract, predictions=predictions)
