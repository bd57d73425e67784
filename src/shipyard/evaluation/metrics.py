"""Metrics of predictions against labels: classification, calibration and regression.

Point values come from scikit-learn wherever it has them, so each number means what the field
means by it. Headline metrics also have a weighted form (`weighted_headline`), computed from one
sort and a few cumulative sums, so that a bootstrap resample is a vector of row counts rather than
a copy of the data: 200 resamples of a million rows take seconds, not minutes. With all weights
equal to one, the weighted forms equal scikit-learn's values; the tests hold them to that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from shipyard.core.batch import Array, Label

__all__ = [
    "CLASSIFICATION_HEADLINE",
    "REGRESSION_HEADLINE",
    "ClassificationData",
    "HeadlineWeights",
    "bootstrap",
    "calibration",
    "classification_metrics",
    "positions",
    "regression_metrics",
]

CLASSIFICATION_HEADLINE = ("accuracy", "f1_macro", "roc_auc", "brier")
REGRESSION_HEADLINE = ("mae", "rmse", "r2")
_EPS = 1e-15


@dataclass(frozen=True)
class ClassificationData:
    """Labels and scores of a classifier, as positions into `classes`.

    Args:
        classes: the class labels, in the order of the probability columns.
        y_true: the true class of each row, as a position into `classes`.
        y_pred: the predicted class of each row, as a position into `classes`.
        proba: rows x classes probabilities, or None for a classifier that does not score.
    """

    classes: tuple[Label, ...]
    y_true: Array
    y_pred: Array
    proba: Array | None

    @property
    def binary(self) -> bool:
        """True for two classes."""
        return len(self.classes) == 2


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
        "classes": [_plain(c) for c in data.classes],
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


class _SortedScores:
    """One sort of the positive class's scores, reused by every weighted AUC."""

    def __init__(self, scores: Array, positive: Array) -> None:
        order = np.argsort(-scores, kind="mergesort")
        self.order = order
        self.positive = positive[order].astype(np.float64)
        ordered = scores[order]
        # The last position of each run of equal scores: ties are one step of the curve.
        self.ends = np.flatnonzero(np.r_[ordered[1:] != ordered[:-1], True])

    def auc(self, weights: Array) -> float:
        w = weights[self.order]
        tps = np.cumsum(w * self.positive)[self.ends]
        fps = np.cumsum(w * (1.0 - self.positive))[self.ends]
        if tps[-1] <= 0 or fps[-1] <= 0:
            return float("nan")
        tpr = np.r_[0.0, tps / tps[-1]]
        fpr = np.r_[0.0, fps / fps[-1]]
        return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


class HeadlineWeights:
    """The headline metrics under row weights (bootstrap counts); all-ones weights give the plain values.

    Args:
        data: labels and scores of a classifier, or None for a regressor.
        y_true: the regressor's truth (regression only).
        y_pred: the regressor's predictions (regression only).
    """

    def __init__(
        self,
        data: ClassificationData | None = None,
        *,
        y_true: Array | None = None,
        y_pred: Array | None = None,
    ) -> None:
        self.data = data
        if data is not None:
            self.names: tuple[str, ...] = (
                CLASSIFICATION_HEADLINE if data.proba is not None else ("accuracy", "f1_macro")
            )
            k = len(data.classes)
            self.k = k
            self.pair = data.y_true * k + data.y_pred
            self.correct = (data.y_true == data.y_pred).astype(np.float64)
            self.sorted: list[_SortedScores] = []
            if data.proba is not None:
                onehot = np.eye(k)[data.y_true]
                self.squared = np.sum((data.proba - onehot) ** 2, axis=1)
                if data.binary:
                    self.squared = (data.proba[:, 1] - (data.y_true == 1)) ** 2
                    self.sorted = [_SortedScores(data.proba[:, 1], data.y_true == 1)]
                else:
                    self.sorted = [_SortedScores(data.proba[:, j], data.y_true == j) for j in range(k)]
        else:
            if y_true is None or y_pred is None:
                raise ValueError(
                    "HeadlineWeights needs a classifier's data, or y_true and y_pred of a regressor"
                )
            self.names = REGRESSION_HEADLINE
            self.y_true = y_true.astype(np.float64)
            self.error = (y_pred - y_true).astype(np.float64)

    def __call__(self, weights: Array) -> dict[str, float]:
        total = float(weights.sum())
        if self.data is None:
            mae = float(np.dot(weights, np.abs(self.error)) / total)
            mse = float(np.dot(weights, self.error**2) / total)
            mean = float(np.dot(weights, self.y_true) / total)
            var = float(np.dot(weights, (self.y_true - mean) ** 2) / total)
            return {"mae": mae, "rmse": mse**0.5, "r2": 1.0 - mse / var if var > 0 else float("nan")}
        k = self.k
        confusion = np.bincount(self.pair, weights=weights, minlength=k * k).reshape(k, k)
        tp = np.diag(confusion)
        predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(predicted > 0, tp / predicted, 0.0)
            recall = np.where(actual > 0, tp / actual, 0.0)
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        out = {"accuracy": float(np.dot(weights, self.correct) / total), "f1_macro": float(np.mean(f1))}
        if self.sorted:
            aucs = [s.auc(weights) for s in self.sorted]
            out["roc_auc"] = float(np.mean(aucs))
            out["brier"] = float(np.dot(weights, self.squared) / total)
        return out


def bootstrap(
    headline: HeadlineWeights, n_rows: int, *, resamples: int = 200, seed: int = 0, level: float = 0.95
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap confidence intervals of the headline metrics (seeded, reproducible).

    Each resample draws `n_rows` rows with replacement, expressed as row counts, so no data is
    copied.

    Args:
        headline: the weighted headline metrics of the data.
        n_rows: the number of rows.
        resamples: the number of bootstrap resamples.
        seed: the random seed; the same seed gives the same intervals.
        level: the confidence level of the intervals.
    """
    rng = np.random.default_rng(seed)
    values: dict[str, list[float]] = {name: [] for name in headline.names}
    for _ in range(resamples):
        counts = np.bincount(rng.integers(0, n_rows, n_rows), minlength=n_rows).astype(np.float64)
        for name, value in headline(counts).items():
            values[name].append(value)
    tail = (1.0 - level) / 2.0
    out = {}
    for name, series in values.items():
        array = np.asarray(series)
        array = array[np.isfinite(array)]
        if len(array) == 0:
            continue
        low, high = np.quantile(array, [tail, 1.0 - tail])
        out[name] = {"low": float(low), "high": float(high), "level": level, "resamples": len(array)}
    return out


def positions(labels: Sequence[Any] | Array, classes: Sequence[Label], *, what: str) -> Array:
    """Map labels to positions into `classes` (numbers and their text both match).

    Raises:
        ValueError: a label is not one of the classes; the message lists the unknown ones.
    """
    import pandas as pd

    values = pd.Series(np.asarray(labels, dtype=object))
    codes = pd.Index(list(classes), dtype=object).get_indexer(pd.Index(values)).astype(np.int64)
    missing = codes < 0
    if missing.any():
        by_text = pd.Index([str(c) for c in classes]).get_indexer(pd.Index(values[missing].astype(str)))
        codes[missing] = by_text
        missing = codes < 0
    if missing.any():
        shown = sorted({str(v) for v in values[missing]})[:10]
        raise ValueError(
            f"{what} holds labels {shown} that the model has never seen; its classes are {list(classes)}"
        )
    return codes


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
