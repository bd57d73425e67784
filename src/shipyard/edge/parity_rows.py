"""The rows the parity gate compares: the version's reference sample, then generated edge rows.

The edge rows are the contract's example row with one feature at an edge: missing (where the
contract passes a missing value to the model, or imputes one), the contract's min and max, a tree
model's split thresholds (exactly at each, and the next float up; the two integers around it for
an integer feature), every known category and an unseen one (where the contract lets it through),
false and true. Rows the contract rejects are left out: they are never served.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.batch import Array, Batch
from shipyard.core.contract import Contract, Feature, example_row
from shipyard.core.dtypes import DType
from shipyard.errors import ExportError

if TYPE_CHECKING:
    from shipyard.edge.ensemble import Ensemble
    from shipyard.registry.loaded import LoadedModel

__all__ = ["UNSEEN", "gathered_rows", "parity_rows"]

UNSEEN = "__shipyard_unseen__"
"""The category no contract lists: an unseen value, for features that let one through."""

_MAX_THRESHOLDS = 200  # per feature: a forest can split one feature at thousands of points


def parity_rows(loaded: LoadedModel, *, ensemble: Ensemble | None = None, dtype: str = "float64") -> Batch:
    """The rows the gate compares: the reference sample, then the edge rows the contract accepts.

    Args:
        loaded: the version.
        ensemble: the version's trees, when it is a bare tree model: its split thresholds are
            added as edge values of the features they split.
        dtype: 'float32': the rows a float32 graph can be given: every float rounded to float32,
            and a threshold's edge values are the float32 numbers on either side of it.
    """
    return gathered_rows(loaded, ensemble, dtype=dtype)[0]


def as_float32(batch: Batch) -> Batch:
    """The batch with every float column rounded to float32 (and back to float64): what a client
    of a float32 graph can send."""
    columns = {
        name: column.astype(np.float32).astype(np.float64) if column.dtype == np.float64 else column
        for name, column in batch.columns.items()
    }
    return Batch(columns, batch.n_rows)


def gathered_rows(
    loaded: LoadedModel, ensemble: Ensemble | None, *, dtype: str = "float64"
) -> tuple[Batch, dict[str, int]]:
    """`parity_rows`, and how many rows each source gave (reference sample, edge rows).

    Raises:
        ExportError: there is no reference sample and the contract accepts no edge row.
    """
    contract = loaded.contract
    parts = []
    counts = {"reference sample": 0, "edge rows": 0}
    background = loaded.background
    if background is not None and background.n_rows:
        parts.append(background.select(contract.names))
        counts["reference sample"] = background.n_rows
    edges = _edge_records(contract, ensemble, float32=dtype == "float32")
    validation = contract.validate(Batch.from_records(edges))
    accepted = validation.batch.take(validation.accepted_rows)
    if accepted.n_rows:
        parts.append(accepted)
        counts["edge rows"] = accepted.n_rows
    if not parts:
        raise ExportError(
            f"{loaded.version.ref} has no reference sample and its contract accepts no edge row; "
            "there is nothing to check parity on. Register the version with its training data"
        )
    rows = _concat(parts, contract)
    return (as_float32(rows) if dtype == "float32" else rows), counts


def _concat(parts: list[Batch], contract: Contract) -> Batch:
    """Parts end to end; a column that is int64 in one part and float64 (missing) in another
    becomes float64, as the contract gives a column with missing values."""
    columns = {}
    for name in contract.names:
        arrays = [p.columns[name] for p in parts]
        if any(a.dtype == object for a in arrays):
            arrays = [a.astype(object) for a in arrays]
        columns[name] = np.concatenate(arrays)
    return Batch(columns, sum(p.n_rows for p in parts))


def _edge_records(contract: Contract, ensemble: Ensemble | None, *, float32: bool) -> list[dict[str, Any]]:
    """One row per edge value: the contract's example row with one feature at the edge."""
    base = example_row(contract)
    thresholds = ensemble.split_points() if ensemble is not None else {}
    records = []
    for column, feature in enumerate(contract.features):
        for value in _edge_values(feature, thresholds.get(column), float32=float32):
            records.append(base | {feature.name: value})
    return records


def _edge_values(feature: Feature, thresholds: Array | None, *, float32: bool) -> list[Any]:
    values: list[Any] = []
    if feature.on_missing != "reject":
        values.append(None)
    if feature.is_numeric:
        values += [v for v in (feature.min, feature.max) if v is not None]
        if thresholds is not None and len(thresholds):
            picked = thresholds[
                np.linspace(0, len(thresholds) - 1, min(len(thresholds), _MAX_THRESHOLDS)).astype(int)
            ]
            for t in np.unique(picked):
                if feature.dtype is DType.INT:
                    values += sorted({math.floor(t), math.ceil(t)})
                elif float32:  # the float32 numbers on either side of the threshold
                    below = np.float32(t) if np.float32(t) <= t else np.nextafter(np.float32(t), -np.inf)
                    values += [float(below), float(np.nextafter(below, np.float32(np.inf)))]
                else:
                    values += [float(t), float(np.nextafter(t, np.inf))]
    elif feature.categories is not None:
        values += list(feature.categories)
        if feature.dtype is DType.STRING and feature.on_unseen_category == "allow":
            values.append(UNSEEN)
    elif feature.dtype is DType.BOOL:
        values += [False, True]
    elif feature.dtype is DType.STRING:  # free text: any value passes
        values.append(UNSEEN)
    if feature.dtype is DType.INT:
        values = [v if v is None else int(v) for v in values]
    return values
