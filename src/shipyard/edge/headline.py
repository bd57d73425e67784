"""The one number a smaller model is held to: the task's primary metric, before and after.

Quantization and pruning both trade exactness for size; each keeps a change only while the
primary metric of the metric table (`core/metric_table.py`: accuracy, or MAE for regressors)
drops by at most a bound. The values come from `core/scores.py`, as evaluation computes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.core.batch import Array, Label, Task
from shipyard.core.metric_table import lower_is_better, primary_metric
from shipyard.core.scores import ClassificationData, HeadlineWeights, positions

__all__ = ["Headline", "MetricDrop", "drop_of"]


class Headline:
    """The task's primary metric (accuracy, or MAE for regressors) against fixed true labels,
    computed for many candidate predictions (a pruning search scores dozens).

    Args:
        task: 'classification' or 'regression'.
        y_true: the true labels or values.
        classes: a classifier's labels, in the order of its scores (from the truth when None).
    """

    def __init__(self, task: Task, y_true: Any, *, classes: Sequence[Label] | None = None) -> None:
        self.task = task
        self.name = primary_metric(task)
        self.y_true = np.asarray(y_true)
        self.ones = np.ones(len(self.y_true), dtype=np.float64)
        self.classes: tuple[Label, ...] = ()
        if task == "classification":
            self.classes = tuple(classes) if classes is not None else tuple(np.unique(self.y_true).tolist())
            self.truth = positions(self.y_true, self.classes, what="the true labels")

    def of(self, y_pred: Any) -> float:
        """The metric of predicted labels (classification) or values (regression)."""
        if self.task == "regression":
            return self.of_values(y_pred)
        return self.of_positions(positions(np.asarray(y_pred), self.classes, what="the predicted labels"))

    def of_positions(self, predicted: Array) -> float:
        """The metric of predicted classes given as positions into `classes`."""
        data = ClassificationData(self.classes, self.truth, np.asarray(predicted, dtype=np.int64), None)
        return HeadlineWeights(data)(self.ones)[self.name]

    def of_values(self, values: Any) -> float:
        """The metric of a regressor's predicted values."""
        predicted = np.asarray(values, dtype=np.float64).reshape(-1)
        scores = HeadlineWeights(y_true=self.y_true.astype(np.float64), y_pred=predicted)
        return scores(self.ones)[self.name]


@dataclass(frozen=True)
class MetricDrop:
    """The primary metric before and after a change, and how much worse it got.

    Args:
        metric: the metric's name ('accuracy', 'mae').
        before: its value for the original model.
        after: its value for the changed model.
    """

    metric: str
    before: float
    after: float

    @property
    def drop(self) -> float:
        """How much worse the metric got (negative when it improved), in the metric's units."""
        return self.after - self.before if lower_is_better(self.metric) else self.before - self.after

    def within(self, bound: float) -> bool:
        """True when the metric dropped by at most `bound`."""
        return self.drop <= bound + 1e-12

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe."""
        return {"metric": self.metric, "before": self.before, "after": self.after, "drop": self.drop}


def drop_of(
    task: Task, y_true: Array, before: Array, after: Array, *, classes: Sequence[Label] | None = None
) -> MetricDrop:
    """The primary metric's drop from the `before` predictions to the `after` ones on `y_true`."""
    if task == "classification" and classes is None:
        classes = tuple(np.unique(np.concatenate([np.asarray(a) for a in (y_true, before, after)])).tolist())
    metric = Headline(task, y_true, classes=classes)
    return MetricDrop(metric.name, metric.of(before), metric.of(after))
