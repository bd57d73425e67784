"""Closed-form Shapley values of linear models against a brute force over every coalition."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import (
    ElasticNet,
    HuberRegressor,
    Lasso,
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.neighbors import KNeighborsRegressor
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from shipyard.attribution.base import additivity_error
from shipyard.attribution.linear import Linear, linear_explainer
from shipyard.errors import ExplanationError


def brute_force(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Interventional Shapley values of one row by the definition: (features, outputs)."""
    d = x.shape[0]

    def value(coalition: tuple[int, ...]) -> np.ndarray:
        mixed = background.copy()
        mixed[:, list(coalition)] = x[list(coalition)]
        return np.asarray(f(mixed), dtype=np.float64).reshape(len(background), -1).mean(axis=0)

    phi = np.zeros((d, value(()).shape[0]))
    for i in range(d):
        others = [j for j in range(d) if j != i]
        for size in range(d):
            weight = 1.0 / (d * math.comb(d - 1, size))
            for coalition in itertools.combinations(others, size):
                phi[i] += weight * (value((*coalition, i)) - value(coalition))
    return phi


REGRESSORS: dict[str, Callable[[], Any]] = {
    "linear_regression": LinearRegression,
    "ridge": lambda: Ridge(alpha=0.5),
    "lasso": lambda: Lasso(alpha=0.1),
    "elastic_net": lambda: ElasticNet(alpha=0.1),
    "sgd": lambda: SGDRegressor(random_state=0),
    "huber": HuberRegressor,
}

CLASSIFIERS: dict[str, Callable[[], Any]] = {
    "logistic": LogisticRegression,
    "sgd": lambda: SGDClassifier(random_state=0),
    "ridge": RidgeClassifier,
    "linear_svc": LinearSVC,
}


@pytest.fixture(scope="module")
def regression() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_regression(n_samples=60, n_features=5, noise=0.5, random_state=0)
    return x, y


@pytest.mark.parametrize("kind", sorted(REGRESSORS), ids=str)
def test_regressors_equal_the_brute_force(kind: str, regression: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = regression
    model = REGRESSORS[kind]().fit(x, y)
    explainer = linear_explainer(model, background=x[:8], classes=None)
    assert explainer is not None
    assert (explainer.method, explainer.space, explainer.outputs) == ("linear", "raw", ("value",))
    rows = x[20:24]
    values = explainer.attribute(rows)
    assert values.shape == (4, 5, 1)
    for r in range(4):
        np.testing.assert_allclose(values[r], brute_force(model.predict, rows[r], x[:8]), rtol=0, atol=1e-9)
    np.testing.assert_allclose(explainer.base(), [model.predict(x[:8]).mean()], atol=1e-9)
    output = explainer.output(rows)
    np.testing.assert_array_equal(output[:, 0], model.predict(rows))
    assert additivity_error(values, np.tile(explainer.base(), (4, 1)), output).max() < 1e-9


@pytest.mark.parametrize("kind", sorted(CLASSIFIERS), ids=str)
@pytest.mark.parametrize("n_classes", [2, 3], ids=lambda n: f"{n}_classes")
def test_classifier_margins_equal_the_brute_force(kind: str, n_classes: int) -> None:
    x, y = make_classification(
        n_samples=90, n_features=4, n_informative=3, n_redundant=0, n_classes=n_classes, random_state=1
    )
    labels = np.array(["ant", "bee", "cat"])[y]
    model = CLASSIFIERS[kind]().fit(x, labels)
    explainer = linear_explainer(model, background=x[:6], classes=None)
    assert explainer is not None
    assert explainer.space == "log_odds"
    assert explainer.outputs == (("bee",) if n_classes == 2 else ("ant", "bee", "cat"))
    rows = x[30:33]
    values = explainer.attribute(rows)
    assert values.shape == (3, 4, len(explainer.outputs))
    for r in range(3):
        np.testing.assert_allclose(values[r], brute_force(model.decision_function, rows[r], x[:6]), atol=1e-9)
    output = explainer.output(rows)
    np.testing.assert_allclose(output, model.decision_function(rows).reshape(3, -1), atol=0)
    assert additivity_error(values, np.tile(explainer.base(), (3, 1)), output).max() < 1e-9


def test_the_contract_classes_name_the_outputs() -> None:
    x, y = make_classification(n_samples=40, n_features=3, n_informative=2, n_redundant=0, random_state=0)
    model = LogisticRegression().fit(x, y)
    explainer = linear_explainer(model, background=x, classes=(False, True))
    assert explainer is not None and explainer.outputs == ("True",)


def test_sparse_input_gives_the_dense_values() -> None:
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(50, 6)) < 0.3).astype(np.float64)
    model = Ridge().fit(sp.csr_matrix(x), x @ np.arange(6.0))
    sparse = linear_explainer(model, background=sp.csr_matrix(x[:10]), classes=None)
    plain = linear_explainer(model, background=x[:10], classes=None)
    assert sparse is not None and plain is not None
    np.testing.assert_allclose(
        sparse.attribute(sp.csr_matrix(x[10:15])), plain.attribute(x[10:15]), atol=1e-12
    )
    np.testing.assert_allclose(sparse.base(), plain.base(), atol=1e-12)


OTHERS: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {
    "poisson_link": lambda x, y: PoissonRegressor().fit(x, np.abs(y)),
    "tree": lambda x, y: DecisionTreeClassifier(max_depth=2).fit(x, y > 0),
    "knn": lambda x, y: KNeighborsRegressor(3).fit(x, y),
    "two_targets": lambda x, y: Ridge().fit(x, np.column_stack([y, -y])),
}


@pytest.mark.parametrize("kind", sorted(OTHERS), ids=str)
def test_not_a_linear_model(kind: str, regression: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = regression
    assert linear_explainer(OTHERS[kind](x, y), background=x[:5], classes=None) is None


def test_a_background_of_another_width_is_refused(regression: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = regression
    model = Ridge().fit(x, y)
    with pytest.raises(ExplanationError, match="expected at least one row of the estimator's 5"):
        linear_explainer(model, background=x[:0], classes=None)
    assert isinstance(linear_explainer(model, background=x[:1], classes=None), Linear)
