"""Scores with weights: the headline metrics over a resample's counts, bootstrap intervals, positions
of labels among a model's classes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as m
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression

from shipyard.core.scores import ClassificationData, HeadlineWeights, bootstrap, positions
from shipyard.evaluation.metrics import classification_metrics


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
