"""What a smaller model is held to: the task's headline metrics, before and after.

Quantization and pruning both trade exactness for size; each keeps a change only while every
headline metric that `core/scores.py` computes drops by at most a bound: accuracy and macro F1
for a classifier, and ROC AUC and the Brier score when it has probabilities; MAE, RMSE and R2
for a regressor (the metrics the parity gate also holds an export to). Accuracy alone would let
a boosting model be cut to its first tree: the labels barely move while the probabilities
collapse towards the prior, which the Brier score sees. Which way is worse for each metric comes
from the metric table (`core/metric_table.py`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.core.batch import Array, Label, Predictions, Task
from shipyard.core.metric_table import lower_is_better
from shipyard.core.scores import ClassificationData, HeadlineWeights, positions

__all__ = ["Headline", "MetricDrop", "drop_of"]


class Headline:
    """The headline metrics against fixed true labels, for many candidate predictions (a pruning
    search scores dozens).

    Args:
        task: 'classification' or 'regression'.
        y_true: the true labels or values.
        classes: a classifier's labels, in the order of its probabilities (from the truth when None).
    """

    def __init__(self, task: Task, y_true: Any, *, classes: Sequence[Label] | None = None) -> None:
        self.task = task
        self.y_true = np.asarray(y_true)
        self.ones = np.ones(len(self.y_true), dtype=np.float64)
        self.classes: tuple[Label, ...] = ()
        if task == "classification":
            self.classes = tuple(classes) if classes is not None else tuple(np.unique(self.y_true).tolist())
            self.truth = positions(self.y_true, self.classes, what="the true labels")

    def of(self, predicted: Any, probabilities: Array | None = None) -> dict[str, float]:
        """The metrics of predicted labels (with their probabilities, rows x classes in the order
        of `classes`, when the model has them), or of a regressor's values."""
        if self.task == "regression":
            values = np.asarray(predicted, dtype=np.float64).reshape(-1)
            return HeadlineWeights(y_true=self.y_true.astype(np.float64), y_pred=values)(self.ones)
        labels = positions(np.asarray(predicted), self.classes, what="the predicted labels")
        return self.of_positions(labels, probabilities)

    def of_positions(self, predicted: Array, probabilities: Array | None = None) -> dict[str, float]:
        """The metrics of predicted classes given as positions into `classes`."""
        data = ClassificationData(
            self.classes, self.truth, np.asarray(predicted, dtype=np.int64), probabilities
        )
        return HeadlineWeights(data)(self.ones)

    def of_scores(self, scores: Array) -> dict[str, float]:
        """The metrics of a classifier's probabilities (labels by the largest), or of a regressor's values."""
        if self.task == "regression":
            return self.of(scores)
        return self.of_positions(np.argmax(scores, axis=1), scores)


@dataclass(frozen=True)
class MetricDrop:
    """The headline metrics before and after a change, and how much worse each got.

    Args:
        before: metric name -> its value for the original model.
        after: metric name -> its value for the changed model.
    """

    before: Mapping[str, float]
    after: Mapping[str, float]

    @property
    def drops(self) -> dict[str, float]:
        """Per metric, how much worse it got (negative when it improved), in its own units;
        metrics undefined on the rows (NaN, such as ROC AUC of one class) are left out."""
        out = {}
        for name, was in self.before.items():
            now = self.after.get(name, math.nan)
            change = now - was if lower_is_better(name) else was - now
            if not math.isnan(change):
                out[name] = change
        return out

    @property
    def metric(self) -> str:
        """The metric that got worst."""
        drops = self.drops
        return max(drops, key=lambda name: drops[name]) if drops else ""

    @property
    def drop(self) -> float:
        """The largest drop over the metrics."""
        return max(self.drops.values(), default=0.0)

    def within(self, bound: float) -> bool:
        """True when no metric dropped by more than `bound`."""
        return self.drop <= bound + 1e-12

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: each metric before, after and its drop, and the worst."""
        drops = self.drops
        return {
            "worst": self.metric,
            "drop": self.drop,
            "metrics": {
                name: {"before": self.before[name], "after": self.after.get(name), "drop": drops.get(name)}
                for name in self.before
            },
        }


def drop_of(
    task: Task,
    y_true: Array,
    before: Predictions,
    after: Predictions,
    *,
    classes: Sequence[Label] | None = None,
) -> MetricDrop:
    """The headline metrics' drop from the `before` predictions to the `after` ones on `y_true`."""
    if task == "classification" and classes is None:
        classes = before.classes
    metric = Headline(task, y_true, classes=classes)
    return MetricDrop(
        metric.of(before.values, before.probabilities), metric.of(after.values, after.probabilities)
    )
