"""The headline metrics a smaller model is held to, and which way is worse for each."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, mean_absolute_error, roc_auc_score

from shipyard.core.batch import Predictions
from shipyard.edge.headline import Headline, MetricDrop, drop_of


def test_a_classifiers_metrics_are_scikit_learns() -> None:
    rng = np.random.default_rng(0)
    truth = rng.choice(["no", "yes"], 200)
    positive = rng.random(200)
    probabilities = np.column_stack([1 - positive, positive])
    labels = np.where(positive > 0.5, "yes", "no")
    metrics = Headline("classification", truth, classes=["no", "yes"]).of(labels, probabilities)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, labels))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(truth == "yes", positive))
    assert metrics["brier"] == pytest.approx(brier_score_loss(truth == "yes", positive))


def test_a_rise_in_an_error_is_a_drop_and_an_undefined_metric_is_left_out() -> None:
    change = MetricDrop(
        before={"accuracy": 0.9, "brier": 0.10, "roc_auc": math.nan},
        after={"accuracy": 0.91, "brier": 0.13, "roc_auc": math.nan},
    )
    assert change.drops == pytest.approx({"accuracy": -0.01, "brier": 0.03})
    assert (change.metric, change.drop) == ("brier", pytest.approx(0.03))
    assert not change.within(0.02) and change.within(0.03)


def test_drop_of_two_regressors_predictions() -> None:
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    before = Predictions("regression", truth + 0.1)
    after = Predictions("regression", truth + 0.3)
    change = drop_of("regression", truth, before, after)
    assert change.before["mae"] == pytest.approx(mean_absolute_error(truth, before.values))
    assert change.drops["mae"] == pytest.approx(0.2)
    assert change.drops["r2"] > 0
