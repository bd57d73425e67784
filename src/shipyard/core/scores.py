"""Headline scores of predictions against labels under row weights, and their bootstrap intervals.

Numpy only, so that evaluation (one data set) and monitoring (windows of live traffic with labels
that arrived later) compute the same numbers the same way. The weighted forms take one sort and a
few cumulative sums, so a bootstrap resample is a vector of row counts rather than a copy of the
data. With all weights equal to one they equal scikit-learn's values; the tests hold them to that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.core.batch import Array, Label
from shipyard.core.metric_table import interval_metrics

__all__ = [
    "CLASSIFICATION_HEADLINE",
    "REGRESSION_HEADLINE",
    "ClassificationData",
    "HeadlineWeights",
    "bootstrap",
    "positions",
]

# The metrics with a weighted form here, as the metric table marks them (`interval=True`).
CLASSIFICATION_HEADLINE = interval_metrics("classification")
REGRESSION_HEADLINE = interval_metrics("regression")


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
