"""Path-dependent Shapley values of scikit-learn trees against the definition, computed apart."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from shipyard.attribution.trees import path_dependent_shapley, tree_shap
from shipyard.errors import InputError


def expected(tree: Any, node: int, row: np.ndarray, coalition: set[int]) -> np.ndarray:
    """TreeSHAP's path-dependent expectation, written as the recursion of its definition."""
    if tree.children_left[node] == -1:
        return np.asarray(tree.value[node], dtype=np.float64).ravel()
    left, right, feature = tree.children_left[node], tree.children_right[node], tree.feature[node]
    if feature in coalition:
        x = row[feature]
        go_left = bool(tree.missing_go_to_left[node]) if np.isnan(x) else x <= tree.threshold[node]
        return expected(tree, left if go_left else right, row, coalition)
    cover = tree.weighted_n_node_samples
    return (
        cover[left] * expected(tree, left, row, coalition)
        + cover[right] * expected(tree, right, row, coalition)
    ) / cover[node]


def brute_force(trees: list[Any], row: np.ndarray) -> np.ndarray:
    """The average marginal contribution over every order of the features, of the forest's mean."""

    def value(coalition: set[int]) -> np.ndarray:
        return np.mean([expected(t, 0, row, coalition) for t in trees], axis=0)

    d = len(row)
    phi = np.zeros((d, value(set()).shape[0]))
    for order in itertools.permutations(range(d)):
        joined: set[int] = set()
        for i in order:
            before = value(joined)
            joined.add(i)
            phi[i] += value(joined) - before
    return phi / math.factorial(d)


def test_a_regression_tree_with_missing_values_matches_the_definition_and_adds_up_to_its_prediction() -> None:
    X, y = load_diabetes(return_X_y=True)
    X = X[:, :6].copy()
    X[::7, 2] = np.nan  # the tree learns where missing values go
    model = DecisionTreeRegressor(max_depth=5, random_state=0).fit(X, y)
    for row in (X[0], X[7], X[100]):
        phi, base = path_dependent_shapley([model.tree_], row)
        np.testing.assert_allclose(phi, brute_force([model.tree_], row), rtol=0, atol=1e-9)
        assert abs(phi.sum() + base[0] - model.predict(row[None, :])[0]) <= 1e-9
        assert base[0] == pytest.approx(y.mean(), abs=1e-9)  # no feature known: the mean training label


def test_a_forest_classifier_gets_one_set_per_class_that_adds_up_to_predict_proba() -> None:
    X, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    trees = [t.tree_ for t in model.estimators_]
    for row in X[[0, 60, 120]]:
        phi, base = path_dependent_shapley(trees, row)
        assert phi.shape == (4, 3)
        np.testing.assert_allclose(phi, brute_force(trees, row), rtol=0, atol=1e-9)
        np.testing.assert_allclose(
            phi.sum(axis=0) + base, model.predict_proba(row[None, :])[0], rtol=0, atol=1e-9
        )


def test_boosted_trees_add_their_values() -> None:
    X, y = load_diabetes(return_X_y=True)
    X = X[:, :5]
    trees = [DecisionTreeRegressor(max_depth=3, random_state=s).fit(X, y - s).tree_ for s in range(3)]
    phi, base = path_dependent_shapley(trees, X[3], combine="sum")
    total = sum(t.predict(X[3:4].astype(np.float32))[0] for t in trees)  # the trees' own predictions
    assert abs(phi.sum() + base[0] - total) <= 1e-6


def test_too_many_features_or_an_unknown_combination_is_refused() -> None:
    with pytest.raises(InputError, match="at most 12 features; this row has 13"):
        path_dependent_shapley([], np.zeros(13))
    with pytest.raises(InputError, match="combine must be 'mean' or 'sum'; got 'max'"):
        path_dependent_shapley([], np.zeros(2), combine="max")


def test_tree_shap_in_polynomial_time_equals_the_coalition_values_where_features_repeat_on_a_path() -> None:
    X, y = load_diabetes(return_X_y=True)
    X = X[:, :8].copy()
    X[::7, 2] = np.nan
    tree = DecisionTreeRegressor(max_depth=7, random_state=0).fit(X, y).tree_
    for row in X[:15]:
        np.testing.assert_allclose(
            tree_shap(tree, row), path_dependent_shapley([tree], row)[0], rtol=0, atol=1e-9
        )
    classes = DecisionTreeClassifier(max_depth=5, random_state=0).fit(*load_iris(return_X_y=True))
    for row in load_iris(return_X_y=True)[0][::25]:
        np.testing.assert_allclose(
            tree_shap(classes.tree_, row), path_dependent_shapley([classes.tree_], row)[0], rtol=0, atol=1e-9
        )


def test_tree_shap_adds_up_to_the_prediction_with_more_features_than_coalitions_allow() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 20))
    y = X[:, 0] * X[:, 1] + np.sin(X[:, 2]) + X[:, 19]
    model = DecisionTreeRegressor(max_depth=10, random_state=0).fit(X, y)
    base = float(model.tree_.value[0].ravel()[0])
    for row in X[:10]:
        phi = tree_shap(model.tree_, row)
        assert phi.shape == (20, 1)
        assert abs(phi.sum() + base - model.predict(row[None, :])[0]) <= 1e-9
