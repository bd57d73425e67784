"""Every stored metric against its scikit-learn reference; the weighted forms against the plain ones."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn import metrics as m
from sklearn.calibration import calibration_curve
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shipyard.core.scores import ClassificationData, HeadlineWeights, bootstrap, positions
from shipyard.evaluation.metrics import calibration, classification_metrics, regression_metrics


def fitted(loader: Any) -> ClassificationData:
    X, y = loader(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.05)).fit(X[::2], y[::2])
    X_test, y_test = X[1::2], y[1::2]
    proba = model.predict_proba(X_test)
    classes = tuple(model.classes_.tolist())
    return ClassificationData(classes, positions(y_test, classes, what="y"), proba.argmax(axis=1), proba)


@pytest.fixture(scope="module")
def binary() -> ClassificationData:
    return fitted(load_breast_cancer)


@pytest.fixture(scope="module")
def multi() -> ClassificationData:
    return fitted(load_wine)


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


@pytest.mark.parametrize("kind", ["binary", "multi"])
def test_weighted_headline_with_counts_equals_scikit_learn_on_the_resample(
    binary: ClassificationData, multi: ClassificationData, kind: str
) -> None:
    data = binary if kind == "binary" else multi
    assert data.proba is not None
    headline = HeadlineWeights(data)
    ones = headline(np.ones(len(data.y_true)))
    point = classification_metrics(data)
    for name in ("accuracy", "f1_macro", "roc_auc", "brier"):
        assert ones[name] == pytest.approx(point[name]), name
    rng = np.random.default_rng(3)
    index = rng.integers(0, len(data.y_true), len(data.y_true))
    counts = np.bincount(index, minlength=len(data.y_true)).astype(float)
    resampled = ClassificationData(data.classes, data.y_true[index], data.y_pred[index], data.proba[index])
    expected = classification_metrics(resampled)
    got = headline(counts)
    for name in ("accuracy", "f1_macro", "roc_auc", "brier"):
        assert got[name] == pytest.approx(expected[name]), name


def test_weighted_regression_headline_equals_scikit_learn() -> None:
    X, y = load_diabetes(return_X_y=True)
    pred = LinearRegression().fit(X, y).predict(X)
    got = HeadlineWeights(y_true=y, y_pred=pred)(np.ones(len(y)))
    assert got["mae"] == pytest.approx(m.mean_absolute_error(y, pred))
    assert got["rmse"] == pytest.approx(m.root_mean_squared_error(y, pred))
    assert got["r2"] == pytest.approx(m.r2_score(y, pred))


def test_bootstrap_is_seeded_and_brackets_the_point_value(binary: ClassificationData) -> None:
    headline = HeadlineWeights(binary)
    n = len(binary.y_true)
    first = bootstrap(headline, n, resamples=100, seed=7)
    again = bootstrap(headline, n, resamples=100, seed=7)
    other = bootstrap(headline, n, resamples=100, seed=8)
    assert first == again
    assert first != other
    point = classification_metrics(binary)
    for name in ("accuracy", "roc_auc", "brier", "f1_macro"):
        assert first[name]["low"] <= point[name] <= first[name]["high"], name
        assert first[name]["level"] == 0.95


def test_labels_the_model_never_saw_are_named() -> None:
    with pytest.raises(ValueError, match=r"\['maybe'\]"):
        positions(["yes", "no", "maybe"], ("no", "yes"), what="the target 'label'")
    assert positions(["1", 0, 1], (0, 1), what="y").tolist() == [1, 0, 1]
