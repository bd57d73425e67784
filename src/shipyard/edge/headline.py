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

__all__ = ["MetricDrop", "drop_of", "headline"]


def headline(task: Task, y_true: Any, y_pred: Any, *, classes: Sequence[Label] | None = None) -> float:
    """The task's primary metric of `y_pred` against `y_true` (accuracy, or MAE for regressors).

    Args:
        task: 'classification' or 'regression'.
        y_true: the true labels or values.
        y_pred: the predicted labels or values.
        classes: a classifier's labels (the union of both sides when None).
    """
    name = primary_metric(task)
    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    ones = np.ones(len(truth), dtype=np.float64)
    if task == "regression":
        scores = HeadlineWeights(y_true=truth.astype(np.float64), y_pred=predicted.astype(np.float64))
        return scores(ones)[name]
    labels = tuple(classes) if classes is not None else tuple(np.unique(np.r_[truth, predicted]).tolist())
    data = ClassificationData(
        labels,
        positions(truth, labels, what="the true labels"),
        positions(predicted, labels, what="the predicted labels"),
        None,
    )
    return HeadlineWeights(data)(ones)[name]


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
    return MetricDrop(
        primary_metric(task),
        headline(task, y_true, before, classes=classes),
        headline(task, y_true, after, classes=classes),
    )
