"""Measure one version on labelled rows: score them through its contract, then every metric.

The rows the contract rejects are counted (with their first violations) and left out, so the
numbers describe what the model would have answered. Classifiers get the classification and
calibration metrics, curves, slices and fairness by positive outcome; regressors the regression
metrics, slices and fairness by error; both the bootstrap intervals and the robustness checks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shipyard.core.batch import Array, Batch
from shipyard.core.jsonsafe import json_safe
from shipyard.core.scores import ClassificationData, HeadlineWeights, bootstrap, positions
from shipyard.errors import EvaluationError
from shipyard.evaluation.fairness import group_fairness
from shipyard.evaluation.metrics import classification_metrics, regression_metrics
from shipyard.evaluation.result import Evaluation
from shipyard.evaluation.robustness import RobustnessSettings, robustness
from shipyard.evaluation.slices import SliceSpec, grouping
from shipyard.security.masking import Masker

if TYPE_CHECKING:
    from shipyard.registry.loaded import LoadedModel

__all__ = ["MeasureOptions", "measure"]

_CURVE_POINTS = 200
_SHOWN_VIOLATIONS = 5


@dataclass(frozen=True, kw_only=True)
class MeasureOptions:
    """What to measure besides the metrics, and how (`evaluate`'s arguments, checked)."""

    target: str
    sensitive: tuple[str, ...]
    specs: tuple[SliceSpec, ...]
    positive: Any
    threshold: float | None
    bins: int
    resamples: int
    seed: int
    level: float
    robust: RobustnessSettings | None
    masker: Masker | None = None

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored with the evaluation."""
        return {
            "target": self.target,
            "sensitive": list(self.sensitive),
            "slices": [str(s) for s in self.specs],
            "positive": json_safe(self.positive),
            "threshold": self.threshold,
            "bins": self.bins,
            "resamples": self.resamples,
            "seed": self.seed,
            "level": self.level,
            "robustness": None if self.robust is None else self.robust.to_dict(),
        }


def measure(
    loaded: LoadedModel, batch: Batch, options: MeasureOptions, source: str, rows_id: str
) -> Evaluation:
    """Score `batch` through the version's contract and measure the accepted rows.

    Args:
        loaded: the version, loaded.
        batch: the labelled rows (the target column among them).
        options: what to measure and how.
        source: where the rows came from, as shown.
        rows_id: the rows' fingerprint (hashed once, shared with the champion's evaluation).

    Raises:
        EvaluationError: a label is missing, unseen or of the wrong type, or the contract rejects
            every row.
    """
    started = time.perf_counter()
    version = loaded.version
    where = str(version.ref)
    task = loaded.contract.task
    raw_target = batch.columns[options.target]
    missing = pd.isna(pd.Series(raw_target, copy=False)).to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        raise EvaluationError(
            f"target {options.target!r} is missing in {len(rows)} row(s) (first: {rows[:5].tolist()}); "
            f"every row evaluated needs its label"
        )
    truth_all = _truth(raw_target, loaded, options.target)
    scored = loaded.score(batch)  # quarantine: rows the contract rejects are counted, not evaluated
    validation, accepted = scored.validation, scored.accepted
    clean, predictions = scored.batch, scored.predictions
    if predictions is None:
        raise EvaluationError(
            f"the contract of {where} rejects every one of the {batch.n_rows} row(s), so there is "
            f"nothing to evaluate:\n{validation.message(where)}"
        )
    truth = truth_all if len(accepted) == batch.n_rows else truth_all[accepted]
    rejected = batch.n_rows - len(accepted)
    data_info: dict[str, Any] = {
        "source": source,
        "rows": batch.n_rows,
        "evaluated": len(accepted),
        "rejected": rejected,
        "rejected_share": rejected / batch.n_rows,
        "fingerprint": rows_id,
        "target": options.target,
    }
    if rejected:
        data_info["violations"] = [str(v) for v in validation.violations[:_SHOWN_VIOLATIONS]]

    def column(name: str, spec: SliceSpec | None = None) -> Array:
        values = batch.columns[name]
        values = values if len(accepted) == batch.n_rows else values[accepted]
        return _group_values(values, name, spec, options, loaded.contract.pii_masks)

    out: dict[str, Any] = {"data": data_info}
    if task == "classification":
        classes = tuple(predictions.classes or loaded.contract.classes or ())
        y_pred = positions(predictions.values, classes, what=f"the predictions of {where}")
        cdata = ClassificationData(classes, truth, y_pred, predictions.probabilities)
        out["metrics"] = classification_metrics(cdata, threshold=options.threshold, bins=options.bins)
        headline = HeadlineWeights(cdata)
        out["curves"] = _curves(cdata)
        out["slices"] = {
            str(spec): _sliced(
                column(spec.feature, spec), spec, lambda rows: _class_slice(cdata, rows, options)
            )
            for spec in options.specs
        }
        positive = _positive(classes, options.positive, where) if options.sensitive else None
        out["fairness"] = {
            name: group_fairness(_groups(column(name), name), truth == positive, y_pred == positive)
            | {"positive": json_safe(classes[positive] if positive is not None else None)}
            for name in options.sensitive
        }
        robust_truth: Array | None = truth
    else:
        y_true = truth.astype(np.float64)
        y_hat = predictions.values.astype(np.float64)
        classes = None
        out["metrics"] = regression_metrics(y_true, y_hat)
        headline = HeadlineWeights(y_true=y_true, y_pred=y_hat)
        out["curves"] = {}
        out["slices"] = {
            str(spec): _sliced(
                column(spec.feature, spec), spec, lambda rows: regression_metrics(y_true[rows], y_hat[rows])
            )
            for spec in options.specs
        }
        out["fairness"] = {
            name: _regression_fairness(_groups(column(name), name), y_true, y_hat)
            for name in options.sensitive
        }
        robust_truth = None
    out["confidence"] = (
        bootstrap(headline, len(truth), resamples=options.resamples, seed=options.seed, level=options.level)
        if options.resamples > 0
        else {}
    )
    out["robustness"] = (
        robustness(loaded, clean, robust_truth, classes, options.robust) if options.robust is not None else {}
    )
    return Evaluation(
        name=version.name,
        version=version.version,
        task=task,
        data=data_info,
        metrics=out["metrics"],
        confidence=out["confidence"],
        slices=out["slices"],
        fairness=out["fairness"],
        robustness=out["robustness"],
        curves=out["curves"],
        settings=options.to_dict(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=round(time.perf_counter() - started, 3),
    )


def _truth(raw: Array, loaded: LoadedModel, target: str) -> Array:
    where = str(loaded.version.ref)
    if loaded.contract.task == "classification":
        classes = loaded.contract.classes or ()
        try:
            return positions(raw, classes, what=f"target {target!r}")
        except ValueError as exc:
            raise EvaluationError(f"{exc}; evaluate {where} on labels it was trained to predict") from None
    if raw.dtype.kind in "iuf":
        return raw.astype(np.float64)
    numbers = pd.to_numeric(pd.Series(raw, copy=False), errors="coerce")
    bad = numbers.isna().to_numpy()
    if bad.any():
        shown = sorted({str(v) for v in raw[bad][:50]})[:5]
        raise EvaluationError(
            f"target {target!r} holds non-numeric values {shown}; {where} is a regressor, so its "
            "target must be numbers"
        )
    return numbers.to_numpy(dtype=np.float64)


def _positive(classes: tuple[Any, ...], positive: Any, where: str) -> int:
    if positive is None:
        if len(classes) != 2:
            raise EvaluationError(
                f"{where} has {len(classes)} classes {list(classes)}; fairness compares who gets a "
                "positive outcome, so name the positive class (positive=... or --positive)"
            )
        return 1
    try:
        return int(positions([positive], classes, what="the positive class")[0])
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None


def _group_values(
    values: Array, name: str, spec: SliceSpec | None, options: MeasureOptions, pii: Mapping[str, str]
) -> Array:
    """A feature's values to group by; a pii feature grouped by value (not cut into numeric
    bins) is grouped by its keyed hashes, so results and reports never show its values."""
    binned = spec is not None and (spec.bins is not None or spec.edges is not None)
    if name in pii and not binned and options.masker is not None:
        return options.masker.column(values, "hash")
    return values


def _groups(column: Array, name: str) -> Array:
    labels, index, _ = grouping(column, SliceSpec(name))
    return np.asarray(labels, dtype=object)[index]


def _sliced(column: Array, spec: SliceSpec, metrics: Any) -> dict[str, Any]:
    labels, index, kind = grouping(column, spec)
    order = np.argsort(index, kind="stable")
    bounds = np.searchsorted(index[order], np.arange(len(labels) + 1))
    groups = []
    for j, label in enumerate(labels):
        rows = order[bounds[j] : bounds[j + 1]]
        if len(rows) == 0:
            continue
        groups.append({"value": label, "rows": len(rows), "metrics": metrics(np.sort(rows))})
    return {"feature": spec.feature, "kind": kind, "groups": groups}


def _class_slice(data: ClassificationData, rows: Array, options: MeasureOptions) -> dict[str, Any]:
    proba = None if data.proba is None else data.proba[rows]
    part = ClassificationData(data.classes, data.y_true[rows], data.y_pred[rows], proba)
    metrics = classification_metrics(part, threshold=options.threshold, bins=options.bins)
    for key in ("reliability_uniform", "reliability_quantile", "classes"):
        metrics.pop(key, None)
    return metrics


def _regression_fairness(groups: Array, y_true: Array, y_pred: Array) -> dict[str, Any]:
    names, index = np.unique(groups.astype(str), return_inverse=True)
    error = np.abs(y_pred - y_true)
    count = np.bincount(index, minlength=len(names))
    mae = np.bincount(index, weights=error, minlength=len(names)) / np.maximum(count, 1)
    mean_pred = np.bincount(index, weights=y_pred, minlength=len(names)) / np.maximum(count, 1)
    return {
        "groups": {
            str(n): {"count": int(count[j]), "mae": float(mae[j]), "mean_prediction": float(mean_pred[j])}
            for j, n in enumerate(names)
        },
        "mae_difference": float(mae.max() - mae.min()),
        "mean_prediction_difference": float(mean_pred.max() - mean_pred.min()),
    }


def _curves(data: ClassificationData) -> dict[str, Any]:
    from sklearn.metrics import precision_recall_curve, roc_curve

    if data.proba is None:
        return {}
    targets = [1] if data.binary else range(len(data.classes))
    roc: dict[str, Any] = {}
    pr: dict[str, Any] = {}
    for j in targets:
        positive = data.y_true == j
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, data.proba[:, j])
        precision, recall, _ = precision_recall_curve(positive, data.proba[:, j])
        keep = _thin(len(fpr))
        roc[str(data.classes[j])] = {"fpr": fpr[keep].round(5).tolist(), "tpr": tpr[keep].round(5).tolist()}
        keep = _thin(len(recall))
        pr[str(data.classes[j])] = {
            "recall": recall[keep].round(5).tolist(),
            "precision": precision[keep].round(5).tolist(),
        }
    return {"roc": roc, "pr": pr}


def _thin(n: int) -> Array:
    if n <= _CURVE_POINTS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, _CURVE_POINTS).round().astype(np.int64))
