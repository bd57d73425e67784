"""Classifiers' held-out scores shared by the score tests (tests/core) and the metric tests
(tests/evaluation)."""

from __future__ import annotations

from typing import Any

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shipyard.core.scores import ClassificationData, positions


def fitted(loader: Any) -> ClassificationData:
    """A logistic regression fitted on the even rows of a scikit-learn dataset, scored on the odd."""
    X, y = loader(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.05)).fit(X[::2], y[::2])
    X_test, y_test = X[1::2], y[1::2]
    proba = model.predict_proba(X_test)
    classes = tuple(model.classes_.tolist())
    return ClassificationData(classes, positions(y_test, classes, what="y"), proba.argmax(axis=1), proba)
