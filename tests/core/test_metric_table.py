"""The one table of metrics: a rise in a loss reads as worse in alerts and in both reports."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np

from shipyard.core.metric_table import (
    METRICS,
    headline_metrics,
    interval_metrics,
    is_worse,
    lower_is_better,
    metric_names,
    primary_metric,
)
from shipyard.core.scores import ClassificationData, HeadlineWeights
from shipyard.evaluation.report import render_report as render_evaluation
from shipyard.evaluation.result import Evaluation
from shipyard.monitoring.alerts import Rule
from shipyard.monitoring.monitor import MonitorReport
from shipyard.monitoring.report import render_report as render_monitoring

LOSSES = ("log_loss", "brier", "ece_uniform", "ece_quantile", "mae", "rmse", "mape")


def test_losses_and_errors_are_lower_is_better_and_nothing_else_is() -> None:
    assert {m.name for m in METRICS if m.lower_is_better} == set(LOSSES)
    assert is_worse("log_loss", 0.1) and not is_worse("log_loss", -0.1)
    assert is_worse("accuracy", -0.1) and not is_worse("accuracy", 0.1)
    assert not lower_is_better("no_such_metric")
    assert len(metric_names()) == len({m.name for m in METRICS})


def test_the_primary_metric_is_the_first_headline_one() -> None:
    assert primary_metric("classification") == "accuracy" == headline_metrics("classification")[0]
    assert primary_metric("regression") == "mae" == headline_metrics("regression")[0]


def test_the_intervals_are_the_metrics_the_weighted_scores_compute() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1.0, 1.0], 50)
    data = ClassificationData(("a", "b"), rng.integers(0, 2, 50), proba.argmax(axis=1), proba)
    assert tuple(HeadlineWeights(data)(np.ones(50))) == interval_metrics("classification")
    y = rng.normal(size=50)
    assert tuple(HeadlineWeights(y_true=y, y_pred=y + 0.1)(np.ones(50))) == interval_metrics("regression")


def _monitor_report(value: float, baseline: float, ci: tuple[float, float]) -> MonitorReport:
    start = datetime(2026, 11, 24, tzinfo=UTC)
    performance = {
        "rows": 500,
        "labelled_share": 1.0,
        "metrics": {"log_loss": value},
        "baseline": {"log_loss": baseline},
        "change": {"log_loss": value - baseline},
        "ci": {"log_loss": {"low": ci[0], "high": ci[1]}},
    }
    return MonitorReport(
        ref="credit:1", name="credit", version=1, task="classification", since=start,
        until=start + timedelta(days=1), requests=500, rows=500, rejected=0, error_rate=0.0,
        latency_ms=None, drift=None, performance=performance, detections=(), estimate=None,
        timeline=(),
    )  # fmt: skip


def test_a_rise_in_log_loss_fires_a_performance_drop_and_a_fall_does_not() -> None:
    rule = Rule.parse("performance_drop:log_loss:0.05")
    fired = rule.check(_monitor_report(0.6, 0.4, (0.55, 0.65)))
    assert [f.rule for f in fired] == ["performance_drop:log_loss"]
    assert rule.check(_monitor_report(0.2, 0.4, (0.15, 0.25))) == []


def test_a_rise_in_log_loss_is_red_in_the_monitoring_report() -> None:
    worse = render_monitoring(_monitor_report(0.6, 0.4, (0.55, 0.65)).to_dict())
    better = render_monitoring(_monitor_report(0.2, 0.4, (0.15, 0.25)).to_dict())
    assert "<span class='fail'>+0.2000</span>" in worse
    assert "<span class='pass'>-0.2000</span>" in better


def test_a_rise_in_log_loss_is_red_in_the_evaluation_report() -> None:
    def evaluation(version: int, log_loss: float) -> Evaluation:
        return Evaluation(
            name="credit", version=version, task="classification",
            data={"source": "holdout.csv", "evaluated": 100, "target": "default"},
            metrics={"accuracy": 0.8, "log_loss": log_loss},
        )  # fmt: skip

    champion = evaluation(1, 0.4)
    worse = evaluation(2, 0.6)
    better = evaluation(3, 0.2)
    row = re.compile(r"<tr><td>log_loss</td>.*?</tr>")
    worse_row = row.search(render_evaluation(_with_champion(worse, champion)))
    better_row = row.search(render_evaluation(_with_champion(better, champion)))
    assert worse_row and "<td class='fail'>+0.2000</td>" in worse_row.group()
    assert better_row and "<td class='pass'>-0.2000</td>" in better_row.group()


def _with_champion(challenger: Evaluation, champion: Evaluation) -> Evaluation:
    return replace(challenger, champion=champion, champion_alias="production")
