"""The front of a scikit-learn model: what its final estimator is given, and which contract
feature each of those columns comes from.

A model-specific engine (linear, trees) explains the final estimator on its own input columns;
summed per contract feature, those shares explain the whole model on the contract's features,
exactly, as long as every step before the estimator is column-wise: each output column depends
on one contract feature only. `front_of` reads that from the fitted steps (one-hot categories,
dropped and infrequent categories, an imputer's dropped columns and missing indicators, the
column transformer's selections) and checks it against the names each step says it outputs; a
step that mixes features (PCA, polynomial features) has no front, and the caller explains the
whole pipeline model-agnostically on the raw features instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.core.batch import Batch

__all__ = ["Front", "front_of"]

_ONE_TO_ONE = frozenset(
    {
        "StandardScaler",
        "MinMaxScaler",
        "RobustScaler",
        "MaxAbsScaler",
        "OrdinalEncoder",
        "PowerTransformer",
        "QuantileTransformer",
    }
)
"""scikit-learn transformers whose output column i is a function of input column i alone."""


@dataclass(frozen=True)
class Front:
    """A fitted model split into the column-wise steps before its final estimator and the
    estimator.

    Attributes:
        estimator: the final estimator.
        columns: the names of the estimator's input columns, in order.
        feature_of: for each column, the index of the contract feature it comes from.
        steps: the fitted steps before the estimator, applied in order (none for a bare one).
        frame_input: the model was fitted on a DataFrame (it is given `batch.to_pandas()`,
            else `batch.to_numpy()`, as the scikit-learn flavor does).
    """

    estimator: Any
    columns: tuple[str, ...]
    feature_of: tuple[int, ...]
    steps: tuple[Any, ...] = ()
    frame_input: bool = False

    def transform(self, batch: Batch) -> Any:
        """What the estimator's predict is given for `batch` (contract features, in order): the
        steps' transform of what the whole model is given."""
        x: Any = batch.to_pandas() if self.frame_input else batch.to_numpy()
        for step in self.steps:
            x = step.transform(x)
        return x

    def mapping(self, names: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """Each contract feature's columns (none for a feature every step dropped).

        Args:
            names: the contract features, in order.
        """
        found: dict[str, list[str]] = {name: [] for name in names}
        for column, feature in zip(self.columns, self.feature_of, strict=True):
            found[names[feature]].append(column)
        return {name: tuple(columns) for name, columns in found.items()}


@dataclass(frozen=True)
class _Columns:
    """Some columns between two steps: their names and the contract feature of each."""

    names: tuple[str, ...]
    of: tuple[int, ...]


def front_of(model: Any, *, names: tuple[str, ...], frame_input: bool) -> Front | None:
    """The front of a fitted scikit-learn model, or None when a step mixes contract features.

    Args:
        model: a fitted estimator or Pipeline (nested Pipelines are flattened).
        names: the contract features, in the order the model is given them.
        frame_input: the model was fitted on a DataFrame (its `feature_names_in_` are then the
            contract's names).

    Returns:
        A bare estimator's identity front; a Pipeline's front when every step before the final
        estimator maps to columns of one contract feature each (checked against the names each
        step outputs); None otherwise, or when the model's inputs are not the contract's.
    """
    steps = _flatten(model)
    estimator = steps[-1] if steps else None
    if estimator is None or estimator == "passthrough":
        return None
    start = _inputs(steps[0], names, frame_input=frame_input)
    if start is None:
        return None
    columns: _Columns | None = start
    for step in steps[:-1]:
        columns = _through(step, columns) if columns is not None else None
    if columns is None:
        return None
    width = getattr(estimator, "n_features_in_", None)
    if width is not None and int(width) != len(columns.names):
        return None
    return Front(estimator, columns.names, columns.of, tuple(steps[:-1]), frame_input)


def _flatten(model: Any) -> list[Any]:
    """The steps of a model, nested Pipelines opened, 'passthrough' steps left out."""
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline):
        return [model]
    steps: list[Any] = []
    for i, (_, step) in enumerate(model.steps):
        if i < len(model.steps) - 1 and (step is None or step == "passthrough"):
            continue
        steps.extend(_flatten(step))
    return steps


def _inputs(first: Any, names: tuple[str, ...], *, frame_input: bool) -> _Columns | None:
    """The columns the model is given: the contract's, by name when it was fitted on a frame."""
    fitted = getattr(first, "feature_names_in_", None)
    if frame_input and fitted is not None:
        index = {name: i for i, name in enumerate(names)}
        given = tuple(str(n) for n in fitted)
        if any(n not in index for n in given):
            return None
        return _Columns(given, tuple(index[n] for n in given))
    width = getattr(first, "n_features_in_", None)
    if width is not None and int(width) != len(names):
        return None
    return _Columns(tuple(names), tuple(range(len(names))))


def _names_out(step: Any, names: tuple[str, ...]) -> tuple[str, ...] | None:
    """The names `step` says it outputs for input columns `names`, or None if it cannot say."""
    fitted = getattr(step, "feature_names_in_", None)
    given = names if fitted is None else tuple(str(n) for n in fitted)
    if len(given) != len(names):
        return None
    try:
        out = step.get_feature_names_out(np.asarray(given, dtype=object))
    except (AttributeError, ValueError, TypeError, NotImplementedError):
        return None
    return tuple(str(n) for n in out)


def _through(step: Any, columns: _Columns) -> _Columns | None:
    """The columns `step` outputs from `columns`, or None when it mixes contract features."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    if step is None or (isinstance(step, str) and step == "passthrough"):
        return columns
    if isinstance(step, Pipeline):
        current: _Columns | None = columns
        for _, inner in step.steps:
            current = _through(inner, current) if current is not None else None
        return current
    if isinstance(step, ColumnTransformer):
        return _column_transformer(step, columns)
    if isinstance(step, OneHotEncoder):
        return _one_hot(step, columns)
    if isinstance(step, SimpleImputer | MissingIndicator):
        return _imputer(step, columns)
    if isinstance(step, FunctionTransformer):
        return _function(step, columns)
    if type(step).__name__ in _ONE_TO_ONE and type(step).__module__.startswith("sklearn."):
        out = _names_out(step, columns.names)
        if out is None or len(out) != len(columns.names):
            return None
        return _Columns(out, columns.of)
    # Whatever a step does with the columns of one contract feature stays that feature's.
    if len(set(columns.of)) == 1:
        out = _names_out(step, columns.names)
        if out is not None:
            return _Columns(out, (columns.of[0],) * len(out))
    return None


def _column_transformer(ct: Any, columns: _Columns) -> _Columns | None:
    """Each transformer's output block, mapped through its own selection of columns."""
    fitted = getattr(ct, "feature_names_in_", None)
    names = columns.names if fitted is None else tuple(str(n) for n in fitted)
    if len(names) != len(columns.names):
        return None
    # Selections as input positions, callables and the remainder resolved at fit time.
    selected: dict[str, Sequence[int]] | None = getattr(ct, "_transformer_to_input_indices", None)
    blocks: dict[str, slice] | None = getattr(ct, "output_indices_", None)
    if selected is None or blocks is None:
        return None
    width = max((block.stop for block in blocks.values()), default=0)
    out_names: list[str | None] = [None] * width
    out_of: list[int | None] = [None] * width
    verbose = bool(getattr(ct, "verbose_feature_names_out", True))
    for name, transformer, _ in ct.transformers_:
        indices = [int(i) for i in selected.get(name, ())]
        if not indices or (isinstance(transformer, str) and transformer == "drop"):
            continue
        inner = _Columns(tuple(names[i] for i in indices), tuple(columns.of[i] for i in indices))
        result = _through(transformer, inner)
        block = blocks.get(name)
        if result is None or block is None or block.stop - block.start != len(result.names):
            return None
        for k, (column, feature) in enumerate(zip(result.names, result.of, strict=True)):
            out_names[block.start + k] = f"{name}__{column}" if verbose else column
            out_of[block.start + k] = feature
    features = [f for f in out_of if f is not None]
    if len(features) != width:
        return None
    said = _names_out(ct, names)
    labels = said if said is not None and len(said) == width else tuple(str(n) for n in out_names)
    return _Columns(labels, tuple(features))


def _one_hot(encoder: Any, columns: _Columns) -> _Columns | None:
    """One block per input column: its categories, less a dropped one, infrequent ones as one."""
    categories = list(encoder.categories_)
    if len(categories) != len(columns.names):
        return None
    drop = getattr(encoder, "drop_idx_", None)
    try:
        infrequent = list(encoder.infrequent_categories_)
    except AttributeError:  # infrequent grouping off: the attribute is not there
        infrequent = [None] * len(categories)
    counts = []
    for j, values in enumerate(categories):
        n = len(values)
        if infrequent[j] is not None:
            n -= len(infrequent[j]) - 1
        if drop is not None and drop[j] is not None:
            n -= 1
        counts.append(n)
    out = _names_out(encoder, columns.names)
    if out is None or len(out) != sum(counts):
        return None
    fitted = getattr(encoder, "feature_names_in_", None)
    given = columns.names if fitted is None else tuple(str(n) for n in fitted)
    of: list[int] = []
    for j, n in enumerate(counts):
        block = out[len(of) : len(of) + n]
        # The default names are '<input>_<category>': a check that the blocks line up.
        if encoder.feature_name_combiner == "concat" and not all(
            label.startswith(f"{given[j]}_") for label in block
        ):
            return None
        of.extend([columns.of[j]] * n)
    return _Columns(out, tuple(of))


def _imputer(step: Any, columns: _Columns) -> _Columns | None:
    """Kept columns (an all-missing one is dropped) by name, then one indicator per column
    that had missing values at fit time."""
    from sklearn.impute import MissingIndicator

    out = _names_out(step, columns.names)
    if out is None or len(set(columns.names)) != len(columns.names):
        return None
    indicator = step if isinstance(step, MissingIndicator) else getattr(step, "indicator_", None)
    flagged = [] if indicator is None else [int(i) for i in indicator.features_]
    if any(not 0 <= i < len(columns.names) for i in flagged):
        return None
    kept = out[: len(out) - len(flagged)] if not isinstance(step, MissingIndicator) else ()
    if len(kept) + len(flagged) != len(out):
        return None
    fitted = getattr(step, "feature_names_in_", None)
    given = columns.names if fitted is None else tuple(str(n) for n in fitted)
    position = {name: i for i, name in enumerate(given)}
    if any(name not in position for name in kept):
        return None
    of = [columns.of[position[name]] for name in kept] + [columns.of[i] for i in flagged]
    return _Columns(out, tuple(of))


def _function(step: Any, columns: _Columns) -> _Columns | None:
    """A FunctionTransformer is column-wise only when its function is known to be: none (the
    identity) or a numpy function of one value applied to each."""
    func = step.func
    if func is not None and not (isinstance(func, np.ufunc) and func.nin == 1 and func.nout == 1):
        return None
    if step.feature_names_out is None:
        return columns
    out = _names_out(step, columns.names)
    if out is None or len(out) != len(columns.names):
        return None
    return _Columns(out, columns.of)
