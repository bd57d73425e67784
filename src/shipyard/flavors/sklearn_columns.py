"""A fitted `Pipeline(ColumnTransformer(...), ...)` fed from columns, without a DataFrame per call.

A pipeline fitted on a DataFrame whose `ColumnTransformer` selects columns by name needs column
names, so it cannot take a bare matrix the way a positional model does (`positional_twin`). Yet
building a DataFrame per call and letting scikit-learn index it by name costs more than the
transformers themselves on a handful of rows: for a OneHotEncoder and a StandardScaler before
histogram boosting, a third of the whole call. `ColumnarPipeline` does the selection itself:
each transformer gets the matrix of its own columns (what scikit-learn's input check would have
made of the DataFrame's columns), through a copy without `feature_names_in_` (nothing else is
checked against names); the outputs are put side by side by the `ColumnTransformer`'s own
`_hstack`, and the remaining steps run as the pipeline would run them.

Only what is known to read its input by position takes this path: scikit-learn transformers
(alone or in pipelines), `passthrough` and `drop`, each given a list of columns. A call whose
columns would not give the DataFrame path's exact matrix (a missing text value, text beside
numbers in one transformer's columns, booleans) takes the DataFrame path. The first call is made
both ways and compared; should the outputs differ in any value, the pipeline keeps the DataFrame
path for good and says so in the log.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np

from shipyard.core.batch import Array, Batch

__all__ = ["ColumnarPipeline"]

log = logging.getLogger(__name__)

_Group = tuple[Any, tuple[str, ...]]  # a fitted transformer ('passthrough': None) and its columns


class ColumnarPipeline:
    """The fitted pipeline's `ColumnTransformer`, applied to a batch's columns, and the steps after it.

    Build it with `of`; `transform` gives the matrix the later steps take, and `rest` predicts it.
    """

    def __init__(self, transformer: Any, groups: list[_Group], rest: _Rest) -> None:
        self._transformer = transformer
        self._groups = groups
        self.rest = rest
        self._checked = False
        self._off = False  # the first call's outputs differed: DataFrames from then on

    @classmethod
    def of(cls, model: Any) -> ColumnarPipeline | None:
        """The columnar form of `model`, or None when it is not a pipeline that starts with a
        `ColumnTransformer` whose every transformer reads its columns by position."""
        steps = getattr(model, "steps", None)
        if not isinstance(steps, list) or len(steps) < 2:
            return None
        transformer = steps[0][1]
        names = getattr(transformer, "feature_names_in_", None)
        fitted = getattr(transformer, "transformers_", None)
        if names is None or fitted is None or _outputs_frames(model) or _outputs_frames(transformer):
            return None
        later = [step for _, step in steps[1:] if step not in (None, "passthrough")]
        if not later or any(getattr(step, "feature_names_in_", None) is not None for step in later):
            return None
        known = [str(n) for n in names]
        groups: list[_Group] = []
        for _, fitted_step, columns in fitted:
            selected = _column_names(columns, known)
            if selected is None:
                return None
            if fitted_step == "drop" or not selected:
                continue
            step = None if fitted_step == "passthrough" else _nameless(fitted_step)
            if step is None and fitted_step != "passthrough":
                return None
            groups.append((step, selected))
        return cls(transformer, groups, _Rest(later))

    def transform(self, batch: Batch) -> Array | None:
        """What the `ColumnTransformer` makes of `batch` (features by name), or None when the
        batch must take the DataFrame path (see the module's notes)."""
        if self._off:
            return None
        outputs = []
        for step, columns in self._groups:
            if not all(c in batch.columns for c in columns):
                return None
            matrix = _matrix([batch.columns[c] for c in columns])
            if matrix is None:
                return None
            outputs.append(matrix if step is None else step.transform(matrix))
        combined: Array = self._transformer._hstack(outputs, n_samples=batch.n_rows)
        if not self._checked:
            self._checked = True
            reference = self._transformer.transform(batch.to_pandas())
            if not _same(combined, reference):
                log.warning(
                    "the pipeline's columns fed without a DataFrame gave other values than its "
                    "ColumnTransformer on a DataFrame; this model is fed DataFrames from now on"
                )
                self._off = True
                return None
        return combined


class _Rest:
    """The steps after the `ColumnTransformer`: transformers, then the final estimator."""

    def __init__(self, steps: list[Any]) -> None:
        self._transforms = steps[:-1]
        self._final = steps[-1]
        self.classes_ = getattr(self._final, "classes_", None)

    def _through(self, features: Any) -> Any:
        for step in self._transforms:
            features = step.transform(features)
        return features

    def predict(self, features: Any) -> Any:
        return self._final.predict(self._through(features))

    def predict_proba(self, features: Any) -> Any:
        return self._final.predict_proba(self._through(features))


def _outputs_frames(estimator: Any) -> bool:
    """Whether `set_output` made the estimator return DataFrames (later steps then read names)."""
    config = getattr(estimator, "_sklearn_output_config", None) or {}
    return bool(config.get("transform", "default") != "default")


def _column_names(columns: Any, known: list[str]) -> tuple[str, ...] | None:
    """A transformer's columns as names: from a list of names or of positions; None for any other
    selection (one name or position gives a 1-D column; masks, slices and callables are not read)."""
    if isinstance(columns, np.ndarray):
        columns = columns.tolist()
    if not isinstance(columns, list):
        return None
    names = []
    for column in columns:
        if isinstance(column, str) and column in known:
            names.append(column)
        elif isinstance(column, int) and not isinstance(column, bool) and 0 <= column < len(known):
            names.append(known[column])
        else:
            return None
    return tuple(names)


def _nameless(step: Any) -> Any | None:
    """A shallow copy of a fitted scikit-learn transformer (or pipeline of them) without
    `feature_names_in_`, so that it takes a matrix; None for one that may read names or call code."""
    if not type(step).__module__.startswith("sklearn."):
        return None
    steps = getattr(step, "steps", None)
    if steps is not None:
        inner = [(name, _nameless(s) if s not in (None, "passthrough") else s) for name, s in steps]
        if any(s is None for _, s in inner):
            return None
        twin = copy.copy(step)
        twin.steps = inner
        return twin
    if hasattr(step, "transformers") or getattr(step, "func", None) is not None:
        return None  # a nested ColumnTransformer, or a FunctionTransformer calling code on a DataFrame
    params = step.get_params(deep=False) if hasattr(step, "get_params") else None
    if params is None or any(hasattr(v, "fit") for v in params.values()):
        return None  # a meta-transformer holding estimators: not checked here
    twin = copy.copy(step)
    if hasattr(twin, "feature_names_in_"):
        del twin.feature_names_in_
    return twin


def _matrix(columns: list[Array]) -> Array | None:
    """The columns as the matrix scikit-learn's input check makes of a DataFrame of them: numbers
    (integers alone stay integers), or text as objects; None for any other mix."""
    kinds = {c.dtype.kind for c in columns}
    if kinds <= {"i", "u", "f"}:
        return np.column_stack(columns)
    if kinds == {"O"} and all(set(map(type, c)) <= {str} for c in columns):
        return np.column_stack(columns)
    return None


def _same(ours: Any, reference: Any) -> bool:
    """Whether two transformer outputs (dense or sparse) hold the same values in the same places."""
    from scipy import sparse

    if sparse.issparse(ours) != sparse.issparse(reference) or ours.shape != reference.shape:
        return False
    if sparse.issparse(ours):
        ours, reference = ours.toarray(), reference.toarray()
    ours, reference = np.asarray(ours), np.asarray(reference)
    numeric = ours.dtype.kind in "iuf" and reference.dtype.kind in "iuf"
    return ours.dtype == reference.dtype and bool(np.array_equal(ours, reference, equal_nan=numeric))
