"""The parity gate: an export answers exactly as its version does, or it is refused.

The rows compared are the version's reference sample (the training rows kept at registration)
and generated edge rows (`parity_rows`): missing values, values exactly at a tree model's split
thresholds (where a converter that compares in another precision or direction flips a row), the
contract's min and max, every known category and an unseen one. Only rows the contract lets
through are compared: a row it would reject is never served, by the version or by its export.

`check_parity` predicts them with the version and with the export and holds the export to: every
label equal, probabilities (or regression values, relative to their size past 1: |a - b| / max(1,
|a|)) within 1e-6 in float64 (1e-4 in float32), and
the task's headline metrics within `metric_tolerance`: on a labelled holdout when one is given,
else on the reference sample with the version's own answers as the truth.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.batch import Array, Batch, Predictions
from shipyard.core.contract import Contract
from shipyard.core.dtypes import plain
from shipyard.core.jsonsafe import json_safe
from shipyard.core.metric_table import primary_metric
from shipyard.core.scores import ClassificationData, HeadlineWeights, positions
from shipyard.edge.parity_rows import UNSEEN, as_float32, gathered_rows, parity_rows
from shipyard.errors import ExportError

if TYPE_CHECKING:
    from shipyard.edge.ensemble import Ensemble
    from shipyard.registry.loaded import LoadedModel

__all__ = [
    "TOLERANCES",
    "UNSEEN",
    "DifferingRow",
    "Holdout",
    "ParityReport",
    "check_parity",
    "parity_rows",
]

TOLERANCES = {"float64": 1e-6, "float32": 1e-4}
"""How far an export's probabilities or values may be from the version's, by precision."""

_SHOWN = 10


@dataclass(frozen=True)
class Holdout:
    """Labelled rows to measure the headline metric on.

    Args:
        features: the rows (a Batch, DataFrame, Arrow table, records); extra columns are ignored.
        labels: one true label (or value, for a regressor) per row.
    """

    features: Any
    labels: Array

    @classmethod
    def read(cls, path: str | os.PathLike[str], *, target: str, contract: Contract) -> Holdout:
        """Read labelled rows from a CSV, Parquet or JSON Lines file, as `shipyard evaluate` does.

        Raises:
            InputError: the file cannot be read as rows.
            ExportError: the file has no column `target`.
        """
        from shipyard.store.tabular import read_rows

        batch = read_rows(path, contract=contract)
        if target not in batch.columns:
            raise ExportError(
                f"the holdout {path} has no target column {target!r}; its columns are {list(batch.names)}"
            )
        return cls(batch.select(n for n in batch.names if n != target), batch.columns[target])


@dataclass(frozen=True)
class DifferingRow:
    """One row on which the export does not answer as the version does.

    Args:
        row: its index among the rows compared.
        features: the features involved: for a tree model those at a split threshold or missing,
            otherwise every feature; each with its value.
        source: the version's answer (label, probabilities or value).
        export: the export's answer.
        diff: the largest absolute difference of probabilities or values.
    """

    row: int
    features: Mapping[str, Any]
    source: Any
    export: Any
    diff: float

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-safe data."""
        return dict(
            json_safe(
                {
                    "row": self.row,
                    "features": dict(self.features),
                    "source": self.source,
                    "export": self.export,
                    "diff": self.diff,
                }
            )
        )


@dataclass(frozen=True)
class ParityReport:
    """What the parity gate found.

    Args:
        passed: every label equal, every difference within `tolerance`, the metric within its bound.
        dtype: the precision of the export.
        rows: the rows compared.
        tolerance: the bound on probabilities or values.
        max_abs_diff: the largest difference found (a regression value's relative to max(1, |value|)).
        label_mismatches: rows whose labels differ (classification).
        differing: the first rows that differ (up to ten).
        differing_count: how many rows differ in all.
        metric: the headline metric's name.
        metric_source: its value with the version's answers.
        metric_export: its value with the export's answers.
        metric_tolerance: the bound on the metric's change.
        metric_data: what the metric was measured on.
        metrics: every headline metric measured: name -> {source, export, delta}.
        rows_from: how many rows each source gave (reference sample, edge rows).
        notes: what was not compared and why.
    """

    passed: bool
    dtype: str
    rows: int
    tolerance: float
    max_abs_diff: float
    label_mismatches: int
    differing: tuple[DifferingRow, ...]
    differing_count: int
    metric: str
    metric_source: float
    metric_export: float
    metric_tolerance: float
    metric_data: str
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    rows_from: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def metric_delta(self) -> float:
        """The headline metric's change, export less version."""
        return self.metric_export - self.metric_source

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-safe data (what `parity.json` and the registered version keep)."""
        data = {
            "passed": self.passed,
            "dtype": self.dtype,
            "rows": self.rows,
            "rows_from": dict(self.rows_from),
            "tolerance": self.tolerance,
            "max_abs_diff": self.max_abs_diff,
            "label_mismatches": self.label_mismatches,
            "differing_count": self.differing_count,
            "differing": [r.to_dict() for r in self.differing],
            "metric": {
                "name": self.metric,
                "source": self.metric_source,
                "export": self.metric_export,
                "delta": self.metric_delta,
                "tolerance": self.metric_tolerance,
                "data": self.metric_data,
            },
            "metrics": {k: dict(v) for k, v in self.metrics.items()},
            "notes": list(self.notes),
        }
        return dict(json_safe(data))

    def summary(self) -> str:
        """A few lines: the verdict, the numbers, and the rows that differ."""
        verdict = "passed" if self.passed else "FAILED"
        lines = [
            f"parity {verdict} ({self.dtype}): {self.rows} rows compared, max |diff| "
            f"{self.max_abs_diff:.3g} (bound {self.tolerance:g}), {self.label_mismatches} label "
            f"mismatches, {self.metric} {self.metric_source:.6g} -> {self.metric_export:.6g} "
            f"(delta {self.metric_delta:+.3g}, bound {self.metric_tolerance:g}; on {self.metric_data})"
        ]
        if self.differing:
            lines.append(f"{self.differing_count} rows differ; the first:")
            for row in self.differing:
                shown = ", ".join(f"{k}={v!r}" for k, v in row.features.items())
                lines.append(
                    f"  row {row.row}: version {row.source!r}, export {row.export!r} "
                    f"(|diff| {row.diff:.3g}); features {shown}"
                )
        return "\n".join(lines)


# ------------------------------------------------------------------ the gate


def check_parity(
    loaded: LoadedModel,
    exported: Callable[[Batch], Predictions],
    *,
    dtype: str = "float64",
    rows: Batch | None = None,
    holdout: Holdout | None = None,
    tolerance: float | None = None,
    metric_tolerance: float = 1e-4,
    ensemble: Ensemble | None = None,
) -> ParityReport:
    """Predict the parity rows with the version and with the export, and judge the export.

    Args:
        loaded: the version.
        exported: scores a batch (contract features, validated) with the exported artifact.
        dtype: 'float64' or 'float32': the export's precision, which sets the default tolerance.
        rows: compare on these rows instead of `parity_rows(loaded, ensemble=ensemble)`.
        holdout: labelled rows for the headline metric; without, the reference sample is used
            with the version's answers as the truth.
        tolerance: the bound on probabilities or values (default `TOLERANCES[dtype]`).
        metric_tolerance: the bound on each headline metric's change.
        ensemble: the version's trees: their thresholds become edge rows, and a differing row
            names the features at a threshold or missing.

    Raises:
        ExportError: `dtype` is unknown, or there are no rows to compare.
    """
    if dtype not in TOLERANCES:
        raise ExportError(f"dtype {dtype!r} has no parity bound; expected one of {list(TOLERANCES)}")
    bound = TOLERANCES[dtype] if tolerance is None else tolerance
    notes = ["rows the contract rejects are not compared: they are never served"]
    if rows is None:
        rows, rows_from = gathered_rows(loaded, ensemble, dtype=dtype)
    else:
        rows_from = {"given": rows.n_rows}
        rows = as_float32(rows) if dtype == "float32" else rows
    if dtype == "float32":
        notes.append("float32: the rows' numbers are rounded to float32, as a float32 graph receives them")
    source = loaded.predict_valid(rows)
    export = exported(rows)
    diff, labels_differ = _differences(source, export)
    bad = np.flatnonzero(labels_differ | (diff > bound) | np.isnan(diff))
    differing = tuple(_differing(rows, i, source, export, diff, ensemble=ensemble) for i in bad[:_SHOWN])
    metrics, data = _metrics(loaded, exported, rows, source, export, holdout=holdout)
    if holdout is None:
        notes.append(
            "no holdout given: the metric is measured on the compared rows, the version's answers as truth"
        )
    name = primary_metric(loaded.contract.task)
    metric_ok = all(
        not (abs(m["delta"]) > metric_tolerance) for m in metrics.values() if not math.isnan(m["delta"])
    )
    passed = len(bad) == 0 and metric_ok
    headline = metrics.get(name, {"source": math.nan, "export": math.nan})
    return ParityReport(
        passed=passed,
        dtype=dtype,
        rows=rows.n_rows,
        tolerance=bound,
        max_abs_diff=float(np.nanmax(diff)) if len(diff) and not np.isnan(diff).all() else 0.0,
        label_mismatches=int(labels_differ.sum()),
        differing=differing,
        differing_count=len(bad),
        metric=name,
        metric_source=float(headline["source"]),
        metric_export=float(headline["export"]),
        metric_tolerance=metric_tolerance,
        metric_data=data,
        metrics=metrics,
        rows_from=rows_from,
        notes=tuple(notes),
    )


def _answers(predictions: Predictions) -> Array:
    """The numbers compared: probabilities (rows x classes) or values (rows x 1)."""
    if predictions.probabilities is not None:
        return np.asarray(predictions.probabilities, dtype=np.float64)
    if predictions.task == "regression":
        return np.asarray(predictions.values, dtype=np.float64).reshape(-1, 1)
    return np.zeros((predictions.n_rows, 0))


def _differences(source: Predictions, export: Predictions) -> tuple[Array, Array]:
    """Per row, the largest difference (a regression value's relative to max(1, |value|)) and
    whether the labels differ. A classifier without probabilities (a hinge loss) is compared by
    its labels alone."""
    ours, theirs = _answers(source), _answers(export)
    if source.task == "classification" and source.probabilities is None:
        theirs = ours
    if ours.shape != theirs.shape:
        raise ExportError(
            f"the export answers with shape {theirs.shape}, the version with {ours.shape}; "
            "they do not predict the same thing"
        )
    gap = np.abs(ours - theirs)
    if source.task == "regression":
        # values past 1 are compared relative to their size: a float64 sum of many trees in
        # another order (or XGBoost's own float32 sum) moves 1e6 by more than 1e-6 absolute
        gap = gap / np.maximum(1.0, np.abs(ours))
    diff = gap.max(axis=1) if ours.shape[1] else np.zeros(len(ours))
    if source.task == "classification":
        labels = np.array([plain(a) != plain(b) for a, b in zip(source.values, export.values, strict=True)])
    else:
        labels = np.zeros(len(diff), dtype=bool)
    return diff, labels.astype(bool)


def _differing(
    rows: Batch, i: int, source: Predictions, export: Predictions, diff: Array, *, ensemble: Ensemble | None
) -> DifferingRow:
    values = {name: plain(column[i]) for name, column in rows.columns.items()}
    if ensemble is not None:
        points = ensemble.split_points()
        names = list(rows.names)
        involved = {
            name: value
            for column, (name, value) in enumerate(values.items())
            if value is None
            or (column in points and _at_threshold(rows.columns[names[column]], i, points[column]))
        }
        values = involved or values
    return DifferingRow(int(i), values, _answer(source, i), _answer(export, i), float(diff[i]))


def _at_threshold(column: Array, i: int, thresholds: Array) -> bool:
    """The row's value sits at a split: equal to a threshold or the next float up, or (an integer
    feature) one of the two integers around it."""
    if column.dtype.kind not in "iuf":
        return False
    value = float(column[i])
    if column.dtype.kind in "iu":
        return bool(np.any(np.abs(thresholds - value) < 1.0))
    return bool(np.any((thresholds == value) | (np.nextafter(thresholds, np.inf) == value)))


def _answer(predictions: Predictions, i: int) -> Any:
    if predictions.probabilities is not None:
        return {"label": plain(predictions.values[i]), "probabilities": predictions.probabilities[i].tolist()}
    return plain(predictions.values[i])


def _metrics(
    loaded: LoadedModel,
    exported: Callable[[Batch], Predictions],
    rows: Batch,
    source: Predictions,
    export: Predictions,
    *,
    holdout: Holdout | None,
) -> tuple[dict[str, dict[str, float]], str]:
    """Every headline metric with the version's and the export's answers, and what it was measured on."""
    if holdout is None:
        truth = source.values
        data = f"the {rows.n_rows} compared rows, the version's answers as truth"
    else:
        validation = loaded.validate(holdout.features)
        accepted = validation.accepted_rows
        if not len(accepted):
            raise ExportError(f"the contract of {loaded.version.ref} rejects every holdout row")
        held = validation.batch.take(accepted)
        truth = np.asarray(holdout.labels)[accepted]
        source, export = loaded.predict_valid(held), exported(held)
        data = f"the holdout ({len(accepted)} rows the contract accepts)"
    ours, theirs = _headline(loaded.contract, truth, source), _headline(loaded.contract, truth, export)
    metrics = {
        name: {"source": ours[name], "export": theirs[name], "delta": theirs[name] - ours[name]}
        for name in ours
    }
    return metrics, data


def _headline(contract: Contract, truth: Array, predictions: Predictions) -> dict[str, float]:
    if contract.task == "regression":
        values = np.asarray(predictions.values, dtype=np.float64)
        return HeadlineWeights(y_true=np.asarray(truth, dtype=np.float64), y_pred=values)(
            np.ones(len(values))
        )
    classes = predictions.classes or contract.classes or ()
    data = ClassificationData(
        tuple(classes),
        positions(truth, classes, what="the truth"),
        positions(predictions.values, classes, what="the predictions"),
        predictions.probabilities,
    )
    return HeadlineWeights(data)(np.ones(len(truth)))
