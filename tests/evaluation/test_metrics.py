"""Every stored metric against its scikit-learn reference (the weighted forms: tests/core/test_scores.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn import metrics as m
from sklearn.calibration import calibration_curve
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression

from shipyard.core.scores import ClassificationData
from shipyard.evaluation.metrics import calibration, classification_metrics, regression_metrics


def test_binary_metrics_equal_scikit_learn(binary: ClassificationData) -> None:
    y, pred, proba = binary.y_true, binary.y_pred, binary.proba
    assert proba is not None
    out = classification_metrics(binary, threshold=0.3)
    assert out["accuracy"] == pytest.approx(m.accuracy_score(y, pred))
    assert out["precision"] == pytest.approx(m.precision_score(y, pred))
    assert out["recall"] == pytest.approx(m.recall_score(y, pred))
    assert out["f1"] == pytest.approx(m.f1_score(y, pred))
    assert out["f1_macro"] == pytest.approx(m.f1_score(y, pred, average="macro"))
    assert out["f1_weighted"] == pytest.approx(m.f1_score(y, pred, average="weighted"))
    assert out["precision_macro"] == pytest.approx(m.precision_score(y, pred, average="macro"))
    assert out["recall_weighted"] == pytest.approx(m.recall_score(y, pred, average="weighted"))
    assert out["roc_auc"] == pytest.approx(m.roc_auc_score(y, proba[:, 1]))
    assert out["pr_auc"] == pytest.approx(m.average_precision_score(y, proba[:, 1]))
    assert out["log_loss"] == pytest.approx(m.log_loss(y, proba))
    assert out["brier"] == pytest.approx(m.brier_score_loss(y, proba[:, 1]))
    assert out["confusion_matrix"] == m.confusion_matrix(y, pred).tolist()
    at = (proba[:, 1] >= 0.3).astype(int)
    assert out["at_threshold"]["recall"] == pytest.approx(m.recall_score(y, at))
    assert out["at_threshold"]["precision"] == pytest.approx(m.precision_score(y, at))
    assert out["per_class"]["1"]["support"] == int((y == 1).sum())


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_curve_is_scikit_learns_and_ece_is_its_weighted_gap(
    binary: ClassificationData, strategy: Any
) -> None:
    assert binary.proba is not None
    curve = calibration(binary, bins=10, strategy=strategy)
    observed, confidence = calibration_curve(binary.y_true, binary.proba[:, 1], n_bins=10, strategy=strategy)
    np.testing.assert_allclose(curve["observed"], observed)
    np.testing.assert_allclose(curve["confidence"], confidence)
    counts = np.asarray(curve["count"])
    expected = np.sum(counts * np.abs(confidence - observed)) / counts.sum()
    assert curve["ece"] == pytest.approx(expected)
    assert curve["bins"] == 10


def test_multiclass_metrics_equal_scikit_learn(multi: ClassificationData) -> None:
    y, pred, proba = multi.y_true, multi.y_pred, multi.proba
    assert proba is not None
    out = classification_metrics(multi)
    assert out["roc_auc"] == pytest.approx(m.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert out["log_loss"] == pytest.approx(m.log_loss(y, proba))
    assert out["f1_macro"] == pytest.approx(m.f1_score(y, pred, average="macro"))
    assert out["brier"] == pytest.approx(np.mean(np.sum((proba - np.eye(3)[y]) ** 2, axis=1)))
    assert "precision" not in out


def test_regression_metrics_equal_scikit_learn() -> None:
    X, y = load_diabetes(return_X_y=True)
    pred = LinearRegression().fit(X[::2], y[::2]).predict(X[1::2])
    truth = y[1::2]
    out = regression_metrics(truth, pred)
    assert out["mae"] == pytest.approx(m.mean_absolute_error(truth, pred))
    assert out["rmse"] == pytest.approx(m.root_mean_squared_error(truth, pred))
    assert out["r2"] == pytest.approx(m.r2_score(truth, pred))
    assert out["mape"] == pytest.approx(m.mean_absolute_percentage_error(truth, pred))
    assert out["residual_quantiles"]["0.5"] == pytest.approx(np.median(pred - truth))
