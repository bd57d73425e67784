"""Rows for measuring a smaller model: drawn from a version's reference profile, chosen to check
it on, and fed to ONNX Runtime.

Static int8 quantization needs the range of every activation, which it measures by running the
graph on a calibration set. A registered version keeps no training rows, but it keeps its
reference profile (`core/profile.py`): a histogram per numeric feature and counts per category.
`rows_from_profile` draws rows from it, so the calibration set follows the training
distribution feature by feature (not the joint one: the profile does not keep it), and
`feeds_of` turns rows into the inputs a graph takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.batch import Array, Batch
from shipyard.core.contract import Contract, Feature, example_row
from shipyard.core.dtypes import DType
from shipyard.core.profile import OTHER, CategoricalProfile, NumericProfile, Profile
from shipyard.errors import ExportError, InputError

if TYPE_CHECKING:
    import onnx

    from shipyard.registry.loaded import LoadedModel

__all__ = ["check_rows", "feeds_of", "rows_from_profile", "synthetic_feeds"]

Feeds = dict[str, Array]


def rows_from_profile(profile: Profile, contract: Contract, n: int, seed: int = 0) -> Batch:
    """`n` rows drawn feature by feature from a reference profile.

    A numeric value falls in a bin with the bin's share of the profiled values, then uniformly
    within it (the outer bins, open-ended in the profile, run to the profile's min and max);
    integer features are rounded. A categorical value is drawn with its share of the counts.
    No value is missing: the calibration set measures activation ranges, which a NaN would spoil.
    A feature the profile leaves out (pii) or never saw takes the contract's example value.

    Args:
        profile: the version's reference profile.
        contract: the version's contract: the features, in order, and their dtypes.
        n: the number of rows.
        seed: the random seed; the same seed gives the same rows.
    """
    if n < 1:
        raise InputError(f"rows_from_profile was asked for {n} rows; expected at least 1")
    rng = np.random.default_rng(seed)
    example = example_row(contract)
    columns: dict[str, Array] = {}
    for feature in contract.features:
        column = profile.features.get(feature.name)
        if isinstance(column, NumericProfile) and column.count:
            columns[feature.name] = _numeric(column, feature, n, rng)
        elif isinstance(column, CategoricalProfile) and any(k != OTHER for k in column.counts):
            columns[feature.name] = _categorical(column, feature, n, rng)
        else:
            columns[feature.name] = np.asarray([example[feature.name]] * n, dtype=_numpy_type(feature))
    return Batch(columns, n)


def _numpy_type(feature: Feature) -> Any:
    return {DType.INT: np.int64, DType.FLOAT: np.float64, DType.BOOL: bool}.get(feature.dtype, object)


def _numeric(column: NumericProfile, feature: Feature, n: int, rng: np.random.Generator) -> Array:
    assert column.min is not None  # a profile with a count has both bounds
    assert column.max is not None
    counts = np.asarray(column.counts, dtype=np.float64)
    low = np.r_[column.min, column.edges]
    high = np.r_[column.edges, column.max]
    # An outer bin's edge can lie beyond the data (min above the first edge): keep each bin ordered.
    low, high = np.clip(low, column.min, column.max), np.clip(high, column.min, column.max)
    bins = rng.choice(len(counts), size=n, p=counts / counts.sum())
    values = low[bins] + rng.random(n) * (high[bins] - low[bins])
    if feature.dtype is DType.INT:
        return np.asarray(np.clip(np.round(values), column.min, column.max), dtype=np.int64)
    return np.asarray(values)


def _categorical(column: CategoricalProfile, feature: Feature, n: int, rng: np.random.Generator) -> Array:
    texts = [k for k in column.counts if k != OTHER]
    weights = np.asarray([column.counts[k] for k in texts], dtype=np.float64)
    # The profile keeps each value as text; give back the contract's own values where it lists them.
    known = {_text(value): value for value in feature.categories or ()}
    values = [known.get(text, text) for text in texts]
    if feature.dtype is DType.BOOL:
        values = [v if isinstance(v, bool) else v == "true" for v in values]
    picked = rng.choice(len(values), size=n, p=weights / weights.sum())
    return np.asarray([values[i] for i in picked], dtype=_numpy_type(feature))


def _text(value: Any) -> str:
    """The text the profile keeps for a category value (as `CategoricalProfile.of` writes it)."""
    return next(iter(CategoricalProfile.of(np.asarray([value], dtype=object)).counts))


_ELEMENT_TYPES = {1: np.float32, 11: np.float64, 7: np.int64, 9: bool, 8: object}
"""`onnx.TensorProto` element types of inputs, as numpy types: FLOAT, DOUBLE, INT64, BOOL, STRING."""


def feeds_of(model: onnx.ModelProto, rows: Batch | Array | Mapping[str, Array]) -> Feeds:
    """The inputs of `model` for `rows`: feeds as they are, a 2-D array for a graph of one input,
    or a batch by input name (one [rows, 1] column per feature), else stacked into the one input.

    Raises:
        InputError: the rows do not give every input of the graph.
    """
    inputs = list(model.graph.input)
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in inputs if i.name not in initializers]
    if isinstance(rows, Mapping):
        return {str(k): np.asarray(v) for k, v in rows.items()}
    if isinstance(rows, np.ndarray):
        if len(inputs) != 1:
            raise InputError(
                f"calibration rows are one array, but the graph has {len(inputs)} inputs "
                f"{[i.name for i in inputs]}; give a mapping of input name to values"
            )
        return {inputs[0].name: rows.astype(_ELEMENT_TYPES[inputs[0].type.tensor_type.elem_type])}
    feeds: Feeds = {}
    for spec in inputs:
        numpy_type = _ELEMENT_TYPES.get(spec.type.tensor_type.elem_type, np.float32)
        if spec.name in rows.columns:
            feeds[spec.name] = _column(rows.columns[spec.name], numpy_type).reshape(-1, 1)
        elif len(inputs) == 1:
            feeds[spec.name] = rows.to_numpy(numpy_type)
        else:
            raise InputError(
                f"the graph's input {spec.name!r} is none of the rows' columns {list(rows.columns)[:10]}"
            )
    return feeds


def _column(values: Array, numpy_type: Any) -> Array:
    if numpy_type is object:
        return np.asarray(["" if v is None else str(v) for v in values], dtype=object)
    if values.dtype == object:
        values = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    return values.astype(numpy_type)


def synthetic_feeds(model: onnx.ModelProto, n: int, seed: int = 0) -> Feeds:
    """Feeds of `n` rows for timing a graph that came without rows: standard normal numbers,
    zero integers, False, empty strings."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    feeds: Feeds = {}
    for spec in model.graph.input:
        if spec.name in initializers:
            continue
        dims = spec.type.tensor_type.shape.dim
        width = dims[1].dim_value if len(dims) > 1 and dims[1].dim_value > 0 else 1
        numpy_type = _ELEMENT_TYPES.get(spec.type.tensor_type.elem_type, np.float32)
        if numpy_type in (np.float32, np.float64):
            feeds[spec.name] = rng.standard_normal((n, width)).astype(numpy_type)
        elif numpy_type is object:
            feeds[spec.name] = np.full((n, width), "", dtype=object)
        else:
            feeds[spec.name] = np.zeros((n, width), dtype=numpy_type)
    return feeds


def check_rows(
    loaded: LoadedModel, holdout: Any = None, *, drawn: Batch | None = None
) -> tuple[Batch, Array, str]:
    """The rows a smaller model is checked on, their truth, and what they are.

    A holdout's rows the contract accepts, with its labels; else the version's reference sample
    (training rows kept at registration), else `drawn` (rows drawn from the profile), each with
    the version's own answers as the truth.

    Args:
        loaded: the version.
        holdout: labelled rows (`shipyard.edge.parity.Holdout`: `features` and `labels`), or None.
        drawn: rows to fall back on.

    Raises:
        ExportError: no holdout, no reference sample and nothing drawn; or the contract rejects
            every holdout row.
    """
    if holdout is not None:
        validation = loaded.validate(holdout.features)
        accepted = validation.accepted_rows
        if not len(accepted):
            raise ExportError(f"the contract of {loaded.version.ref} rejects every holdout row")
        return validation.batch.take(accepted), np.asarray(holdout.labels)[accepted], "holdout"
    sample = loaded.background
    if sample is not None and sample.n_rows:
        rows, what = sample.select(loaded.contract.names), "reference sample"
    elif drawn is not None:
        rows, what = drawn, "rows drawn from the reference profile"
    else:
        raise ExportError(
            f"{loaded.version.ref} has neither a reference sample nor a profile to check a smaller "
            "model on; give a holdout (labelled rows)"
        )
    return rows, np.asarray(loaded.predict(rows).values), what
