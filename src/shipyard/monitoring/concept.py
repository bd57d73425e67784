"""Concept drift: performance on labelled traffic, detectors on the error stream, and estimates.

- Performance: the headline scores (accuracy, macro F1, AUC, Brier; or MAE, RMSE, R2) of
  `core/scores.py` on the rows whose labels have arrived, with seeded percentile-bootstrap
  confidence intervals, compared with the version's stored evaluation.
- Detectors: DDM (Gama et al. 2004) on the stream of mistakes of a classifier and ADWIN (Bifet
  and Gavalda 2007) on the stream of errors (mistakes, or absolute errors of a regressor), both
  from River, run in the order the predictions were made.
- Estimate: while labels are missing, a classifier's accuracy is estimated from its confidence,
  mapped through the evaluation's reliability curve when there is one (binary classifiers), and
  always marked as an estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.core.batch import Array, Label
from shipyard.core.scores import ClassificationData, HeadlineWeights, bootstrap, positions

__all__ = ["Detection", "detect", "estimate_accuracy", "performance"]


@dataclass(frozen=True, slots=True)
class Detection:
    """A detector's signal at one point of the error stream.

    Args:
        detector: 'DDM' or 'ADWIN'.
        kind: 'drift' (or 'warning', DDM's early signal).
        index: the position in the stream (0 = the window's first labelled row).
    """

    detector: str
    kind: str
    index: int


def detect(errors: Array, *, binary: bool, warnings: bool = False) -> list[Detection]:
    """Run DDM (binary mistakes only) and ADWIN over the error stream, in order.

    Args:
        errors: 1/0 mistakes of a classifier, or absolute errors of a regressor.
        binary: True for mistakes; DDM runs only on them.
        warnings: also report DDM's warnings (the level before a drift).
    """
    from river.drift import ADWIN
    from river.drift.binary import DDM

    adwin = ADWIN()  # type: ignore[no-untyped-call]  # River does not annotate its constructors
    ddm = DDM() if binary else None
    found: list[Detection] = []
    in_warning = False
    for i, value in enumerate(errors.tolist()):
        adwin.update(value)  # type: ignore[no-untyped-call]  # River's update is not annotated
        if adwin.drift_detected:
            found.append(Detection("ADWIN", "drift", i))
        if ddm is not None:
            ddm.update(bool(value))  # type: ignore[no-untyped-call]  # River's update is not annotated
            if ddm.drift_detected:
                found.append(Detection("DDM", "drift", i))
                in_warning = False
            elif warnings and ddm.warning_detected and not in_warning:
                found.append(Detection("DDM", "warning", i))
                in_warning = True
            elif not ddm.warning_detected:
                in_warning = False
    return found


def performance(
    task: str,
    classes: Sequence[Label] | None,
    truth: Sequence[Any] | Array,
    outputs: Mapping[str, Array],
    *,
    resamples: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """The headline scores of labelled rows, with bootstrap confidence intervals.

    Args:
        task: 'classification' or 'regression'.
        classes: the model's classes (classification).
        truth: the labels that arrived.
        outputs: the logged outputs of the same rows ('prediction', 'proba_<class>').
        resamples: bootstrap resamples (0 for none).
        seed: the bootstrap's seed.
        level: the intervals' confidence level.

    Returns:
        {'rows', 'metrics': {name: value}, 'ci': {name: {'low', 'high', 'level'}}, 'errors'}: the
        error stream ('errors': mistakes or absolute errors, in row order) feeds the detectors.

    Raises:
        ValueError: a label is not one of the model's classes.
    """
    n = len(truth)
    if task == "classification":
        assert classes is not None
        data = _classification(classes, truth, outputs)
        headline = HeadlineWeights(data)
        errors = (data.y_true != data.y_pred).astype(np.float64)
    else:
        y_true = np.asarray(truth, dtype=np.float64)
        y_pred = np.asarray(outputs["prediction"], dtype=np.float64)
        headline = HeadlineWeights(y_true=y_true, y_pred=y_pred)
        errors = np.abs(y_pred - y_true)
    metrics = {k: v for k, v in headline(np.ones(n)).items() if np.isfinite(v)}
    ci = bootstrap(headline, n, resamples=resamples, seed=seed, level=level) if resamples and n > 1 else {}
    return {"rows": n, "metrics": metrics, "ci": ci, "errors": errors}


def estimate_accuracy(
    classes: Sequence[Label], outputs: Mapping[str, Array], *, reliability: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """A label-free estimate of a classifier's accuracy from its confidence.

    Each row's chance of being right is its predicted class's probability; for a binary model
    with a reliability curve (the evaluation's calibration: confidence -> observed positive
    rate), the positive probability is first mapped through that curve, so an over- or
    under-confident model is corrected. The mean of those chances estimates the accuracy.

    Returns:
        {'accuracy', 'rows', 'method', 'estimate': True}, or None without probabilities.
    """
    names = [f"proba_{c}" for c in classes]
    if not all(n in outputs for n in names) or not len(outputs[names[0]]):
        return None
    proba = np.column_stack([np.asarray(outputs[n], dtype=np.float64) for n in names])
    method = "mean confidence of the predicted class (uncalibrated)"
    if len(classes) == 2 and reliability and len(reliability.get("confidence", ())) >= 2:
        xs = np.asarray(reliability["confidence"], dtype=np.float64)
        ys = np.asarray(reliability["observed"], dtype=np.float64)
        order = np.argsort(xs)
        positive = np.interp(proba[:, 1], xs[order], ys[order])
        predicted_positive = proba[:, 1] >= proba[:, 0]
        chance = np.where(predicted_positive, positive, 1.0 - positive)
        method = "mean calibrated confidence (the evaluation's reliability curve)"
    else:
        chance = proba.max(axis=1)
    return {"accuracy": float(chance.mean()), "rows": len(chance), "method": method, "estimate": True}


def _classification(
    classes: Sequence[Label], truth: Sequence[Any] | Array, outputs: Mapping[str, Array]
) -> ClassificationData:
    y_true = positions(truth, classes, what="the feedback")
    y_pred = positions(outputs["prediction"], classes, what="the logged predictions")
    names = [f"proba_{c}" for c in classes]
    proba = None
    if all(n in outputs for n in names):
        proba = np.column_stack([np.asarray(outputs[n], dtype=np.float64) for n in names])
    return ClassificationData(tuple(classes), y_true, y_pred, proba)
