"""The one table of metrics: each metric's name, task, direction and whether it is a headline.

Alerts, both reports, gates and the CLI read what a metric is from here, so that a rise in
`log_loss` reads as worse everywhere. The values themselves are computed in
`evaluation/metrics.py` (every metric) and `core/scores.py` (the headline ones under row weights,
with bootstrap intervals, shared with monitoring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "METRICS",
    "Metric",
    "Task",
    "headline_metrics",
    "interval_metrics",
    "is_worse",
    "lower_is_better",
    "metric_names",
    "primary_metric",
]

Task = Literal["classification", "regression"]


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric of predictions against labels.

    Args:
        name: the key in an evaluation's metrics.
        task: the kind of model it measures.
        lower_is_better: True for errors and losses (a rise is for the worse).
        headline: shown in summaries (the CLI's table, the report's metrics); the first headline
            metric of a task is its primary one (alerts' and the monitoring report's default).
        interval: has a bootstrap confidence interval (`core/scores.py` computes it under weights).
    """

    name: str
    task: Task
    lower_is_better: bool = False
    headline: bool = False
    interval: bool = False


_C: Task = "classification"
_R: Task = "regression"

METRICS: tuple[Metric, ...] = (
    Metric("accuracy", _C, headline=True, interval=True),
    Metric("precision", _C, headline=True),
    Metric("recall", _C, headline=True),
    Metric("f1", _C, headline=True),
    Metric("f1_macro", _C, headline=True, interval=True),
    Metric("f1_weighted", _C, headline=True),
    Metric("roc_auc", _C, headline=True, interval=True),
    Metric("pr_auc", _C, headline=True),
    Metric("log_loss", _C, lower_is_better=True, headline=True),
    Metric("brier", _C, lower_is_better=True, headline=True, interval=True),
    Metric("ece_uniform", _C, lower_is_better=True, headline=True),
    Metric("ece_quantile", _C, lower_is_better=True, headline=True),
    Metric("precision_macro", _C),
    Metric("recall_macro", _C),
    Metric("precision_weighted", _C),
    Metric("recall_weighted", _C),
    Metric("mae", _R, lower_is_better=True, headline=True, interval=True),
    Metric("rmse", _R, lower_is_better=True, headline=True, interval=True),
    Metric("r2", _R, headline=True, interval=True),
    Metric("mape", _R, lower_is_better=True, headline=True),
)
_BY_NAME = {m.name: m for m in METRICS}


def metric_names(task: Task | None = None) -> tuple[str, ...]:
    """The names of the metrics of `task` (of both tasks with None), in the table's order."""
    return tuple(m.name for m in METRICS if task is None or m.task == task)


def headline_metrics(task: Task) -> tuple[str, ...]:
    """The headline metrics of `task`, in the table's order."""
    return tuple(m.name for m in METRICS if m.task == task and m.headline)


def interval_metrics(task: Task) -> tuple[str, ...]:
    """The metrics of `task` that get a bootstrap confidence interval, in the table's order."""
    return tuple(m.name for m in METRICS if m.task == task and m.interval)


def primary_metric(task: str) -> str:
    """The one metric that stands for a model's performance: accuracy, or MAE for regressors."""
    return headline_metrics(_R if task == _R else _C)[0]


def lower_is_better(name: str) -> bool:
    """True when a lower value of the metric `name` is better; False for unknown names."""
    metric = _BY_NAME.get(name)
    return metric is not None and metric.lower_is_better


def is_worse(name: str, change: float) -> bool:
    """Whether a change of `change` in the metric `name` is for the worse."""
    return change > 0 if lower_is_better(name) else change < 0
