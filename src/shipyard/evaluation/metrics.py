"""Metrics of predictions against labels: classification, calibration and regression.

Point values come from scikit-learn wherever it has them, so each number means what the field
means by it. The headline metrics' weighted forms and their bootstrap live in `core/scores.py`,
shared with monitoring.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from shipyard.core.batch import Array
from shipyard.core.jsonsafe import json_safe
from shipyard.core.scores import ClassificationData

__all__ = ["calibration", "classification_metrics", "regression_metrics"]

_EPS = 1e-15


def classification_metrics(
    data: ClassificationData, *, threshold: float | None = None, bins: int = 10
) -> dict[str, Any]:
    """Accuracy, precision/recall/F1 (per class, macro, weighted), ROC and PR AUC, log loss,
    confusion matrix, Brier score, expected calibration error and the reliability curve.

    Args:
        data: labels and scores.
        threshold: for binary classifiers, also the threshold-dependent metrics at this cut-off
            of the positive class's probability (the second class).
        bins: the number of calibration bins.
    """
    from sklearn import metrics as m

    k = len(data.classes)
    labels = np.arange(k)
    y, pred = data.y_true, data.y_pred
    precision, recall, f1, support = m.precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0.0
    )
    out: dict[str, Any] = {
        "rows": len(y),
        "classes": [json_safe(c) for c in data.classes],
        "accuracy": float(m.accuracy_score(y, pred)),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
        "precision_weighted": float(
            m.precision_score(y, pred, labels=labels, average="weighted", zero_division=0.0)
        ),
        "recall_weighted": float(
            m.recall_score(y, pred, labels=labels, average="weighted", zero_division=0.0)
        ),
        "f1_weighted": float(m.f1_score(y, pred, labels=labels, average="weighted", zero_division=0.0)),
        "per_class": {
            str(c): {
                "precision": float(precision[j]),
                "recall": float(recall[j]),
                "f1": float(f1[j]),
                "support": int(support[j]),
            }
            for j, c in enumerate(data.classes)
        },
        "confusion_matrix": m.confusion_matrix(y, pred, labels=labels).tolist(),
    }
    if data.binary:
        out["precision"] = float(precision[1])
        out["recall"] = float(recall[1])
        out["f1"] = float(f1[1])
    proba = data.proba
    if proba is None:
        return out
    present = np.unique(y)
    if data.binary:
        if len(present) == 2:
            out["roc_auc"] = float(m.roc_auc_score(y, proba[:, 1]))
            out["pr_auc"] = float(m.average_precision_score(y, proba[:, 1]))
        out["brier"] = float(m.brier_score_loss(y, proba[:, 1]))
    else:
        if len(present) == k:
            out["roc_auc"] = float(
                m.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels)
            )
            onehot = np.eye(k)[y]
            out["pr_auc"] = float(m.average_precision_score(onehot, proba, average="macro"))
        out["brier"] = float(np.mean(np.sum((proba - np.eye(k)[y]) ** 2, axis=1)))
    out["log_loss"] = float(m.log_loss(y, proba, labels=labels))
    for strategy in ("uniform", "quantile"):
        curve = calibration(data, bins=bins, strategy=strategy)
        out[f"ece_{strategy}"] = curve["ece"]
        out[f"reliability_{strategy}"] = curve
    if threshold is not None and data.binary:
        at = (proba[:, 1] >= threshold).astype(np.int64)
        p, r, f, _ = m.precision_recall_fscore_support(y, at, labels=[0, 1], zero_division=0.0)
        out["at_threshold"] = {
            "threshold": threshold,
            "accuracy": float(m.accuracy_score(y, at)),
            "precision": float(p[1]),
            "recall": float(r[1]),
            "f1": float(f[1]),
            "confusion_matrix": m.confusion_matrix(y, at, labels=[0, 1]).tolist(),
        }
    return out


def calibration(
    data: ClassificationData, *, bins: int = 10, strategy: Literal["uniform", "quantile"] = "uniform"
) -> dict[str, Any]:
    """Expected calibration error and the reliability curve.

    Binary classifiers are calibrated on the positive class's probability against the positive
    rate (scikit-learn's `calibration_curve` bins); multi-class ones on the top-label confidence
    against accuracy. ECE is the row-weighted mean gap between confidence and outcome per bin.

    Args:
        data: labels and scores (`proba` must be set).
        bins: the number of bins.
        strategy: 'uniform' (equal-width bins on [0, 1]) or 'quantile' (equal-count bins).
    """
    if data.proba is None:
        raise ValueError("calibration needs probabilities")
    if data.binary:
        confidence = data.proba[:, 1]
        outcome = (data.y_true == 1).astype(np.float64)
    else:
        confidence = data.proba.max(axis=1)
        outcome = (data.y_pred == data.y_true).astype(np.float64)
    if strategy == "quantile":
        edges = np.percentile(confidence, np.linspace(0.0, 100.0, bins + 1))
    else:
        edges = np.linspace(0.0, 1.0, bins + 1)
    # scikit-learn's binning (`calibration_curve`), so the curve is the one users know.
    index = np.searchsorted(edges[1:-1], confidence)
    counts = np.bincount(index, minlength=bins).astype(np.float64)
    used = counts > 0
    mean_confidence: Array = np.bincount(index, weights=confidence, minlength=bins).astype(np.float64)
    mean_outcome: Array = np.bincount(index, weights=outcome, minlength=bins).astype(np.float64)
    mean_confidence[used] = mean_confidence[used] / counts[used]
    mean_outcome[used] = mean_outcome[used] / counts[used]
    ece = float(
        np.sum(counts[used] * np.abs(mean_confidence[used] - mean_outcome[used])) / max(counts.sum(), 1)
    )
    return {
        "strategy": strategy,
        "bins": bins,
        "ece": ece,
        "edges": edges.tolist(),
        "confidence": mean_confidence[used].tolist(),
        "observed": mean_outcome[used].tolist(),
        "count": counts[used].astype(int).tolist(),
    }


def regression_metrics(y_true: Array, y_pred: Array) -> dict[str, Any]:
    """MAE, RMSE, R2, MAPE and the quantiles of the residuals (prediction minus truth)."""
    from sklearn import metrics as m

    residuals = y_pred - y_true
    # R2 needs a spread of the truth; on one row scikit-learn warns and returns NaN.
    r2 = float("nan") if len(y_true) < 2 else float(m.r2_score(y_true, y_pred))
    quantiles = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    return {
        "rows": len(y_true),
        "mae": float(m.mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(m.mean_squared_error(y_true, y_pred))),
        "r2": r2,
        "mape": float(m.mean_absolute_percentage_error(y_true, y_pred)),
        "residual_quantiles": {
            str(q): float(v) for q, v in zip(quantiles, np.quantile(residuals, quantiles), strict=True)
        },
    }
