"""Exact TreeSHAP of tree models against shap, against the brute force over every coalition of
the path-dependent value function (where shap is wrong), against the boosters' own
contributions, and against the slow TreeSHAP; every explanation adds up to the model's own
output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from shipyard.attribution import tree_paths
from shipyard.attribution.base import ColumnExplainer
from shipyard.attribution.shapley import from_coalition_values
from shipyard.attribution.tree_models import tree_explainer
from shipyard.attribution.trees import path_dependent_shapley, tree_shap


def _classification(n_classes: int = 2, nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(160, 6, n_informative=4, n_redundant=1, n_classes=n_classes, random_state=0)
    if nan:
        X[::7, 1] = np.nan
        X[3::11, 4] = np.nan
    return X, y


def _regression(nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_regression(160, 6, n_informative=4, noise=1.0, random_state=0)
    if nan:
        X[::7, 1] = np.nan
    return X, y


def _explain(model: Any, x: Any, float32: bool = False) -> tuple[ColumnExplainer, np.ndarray]:
    """The explainer and values of x, checked to add up to the model's own output (to 1e-9, or
    to float32 precision for XGBoost, which sums its trees and contributions in float32)."""
    classes = tuple(model.classes_) if hasattr(model, "classes_") else None
    explainer = tree_explainer(model, classes=classes)
    assert explainer is not None
    values = explainer.attribute(x)
    output = explainer.output(x)
    gap = np.abs(values.sum(axis=1) + explainer.base() - output).max()
    tolerance = 1e-6 * max(1.0, float(np.abs(output).max())) if float32 else 1e-9
    assert gap <= tolerance, f"does not add up: {gap}"
    return explainer, values


SHAP_CASES: list[tuple[str, Callable[[], Any], bool]] = [
    ("dt-classifier", lambda: DecisionTreeClassifier(max_depth=4, random_state=0), True),
    ("dt-regressor", lambda: DecisionTreeRegressor(max_depth=4, random_state=0), False),
    ("rf-classifier", lambda: RandomForestClassifier(8, max_depth=4, random_state=0), True),
    ("rf-regressor", lambda: RandomForestRegressor(8, max_depth=4, random_state=0), False),
    ("et-classifier", lambda: ExtraTreesClassifier(8, max_depth=4, random_state=0), True),
    ("et-regressor", lambda: ExtraTreesRegressor(8, max_depth=4, random_state=0), False),
    ("gb-binary", lambda: GradientBoostingClassifier(n_estimators=10, max_depth=3), True),
    ("gb-regressor", lambda: GradientBoostingRegressor(n_estimators=10, max_depth=3), False),
    ("hgb-binary", lambda: HistGradientBoostingClassifier(max_iter=10, max_depth=4), True),
    ("hgb-regressor", lambda: HistGradientBoostingRegressor(max_iter=10, max_depth=4), False),
]


@pytest.mark.parametrize("case", SHAP_CASES, ids=lambda c: c[0])
def test_scikit_learn_trees_equal_shap_path_dependent_and_add_up(
    case: tuple[str, Callable[[], Any], bool],
) -> None:
    shap = pytest.importorskip("shap")
    name, make, classifier = case
    nan = name.startswith(("dt", "rf", "hgb"))  # these learn where missing values go
    X, y = _classification(nan=nan) if classifier else _regression(nan=nan)
    model = make().fit(X, y)
    explainer, values = _explain(model, X)
    reference = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
    expected = np.asarray(reference.shap_values(X))
    expected = expected if expected.ndim == 3 else expected[:, :, None]
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(explainer.base(), np.ravel(reference.expected_value), rtol=0, atol=1e-6)
    assert explainer.method == "tree_shap"
    if name.startswith(("dt", "rf", "et")) and classifier:
        assert (explainer.space, explainer.outputs) == ("probability", ("0", "1"))
    elif classifier:
        assert (explainer.space, explainer.outputs) == ("log_odds", ("1",))
    else:
        assert (explainer.space, explainer.outputs) == ("raw", ("value",))


def test_a_fitted_dataframe_is_explained_per_its_columns() -> None:
    X, y = _classification(nan=True)
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])])
    model = RandomForestClassifier(5, max_depth=3, random_state=0).fit(frame, y)
    _, from_frame = _explain(model, frame)
    plain = RandomForestClassifier(5, max_depth=3, random_state=0).fit(X, y)
    _, from_array = _explain(plain, X)
    np.testing.assert_allclose(from_frame, from_array, rtol=0, atol=1e-12)


def test_multiclass_gradient_boosting_equals_the_brute_force_per_class() -> None:
    X, y = _classification(n_classes=3)
    model = GradientBoostingClassifier(n_estimators=6, max_depth=3, random_state=0).fit(X, y)
    explainer, values = _explain(model, X[:12])
    assert (explainer.space, explainer.outputs) == ("log_odds", ("0", "1", "2"))
    for row in range(12):
        for k in range(3):
            trees = [stage.tree_ for stage in model.estimators_[:, k]]
            phi, _ = path_dependent_shapley(trees, X[row], combine="sum")
            expected = phi[:, 0] * model.learning_rate
            np.testing.assert_allclose(values[row, :, k], expected, rtol=0, atol=1e-9)


def _hgb_coalition_values(model: Any, row: np.ndarray) -> np.ndarray:
    """The path-dependent value of every coalition of a HGB model's internal columns, routing
    a followed split the way scikit-learn's predictor documents it."""
    known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    d = len(row)
    masks = np.arange(1 << d)
    n_out = model.n_trees_per_iteration_
    total = np.zeros((len(masks), n_out)) + np.ravel(model._baseline_prediction)
    for predictors in model._predictors:
        for k, predictor in enumerate(predictors):
            nodes = predictor.nodes
            stack = [(0, np.ones(len(masks)))]
            while stack:
                node, weight = stack.pop()
                record = nodes[node]
                if record["is_leaf"]:
                    total[:, k] += weight * record["value"]
                    continue
                feature = int(record["feature_idx"])
                goes_left = _hgb_goes_left(record, row[feature], predictor, known, f_idx_map)
                follows = ((masks >> feature) & 1).astype(bool)
                left, right = int(record["left"]), int(record["right"])
                share = nodes[left]["count"] / record["count"]
                to_left = np.where(follows, 1.0 if goes_left else 0.0, share)
                stack.append((left, weight * to_left))
                stack.append((right, weight * (1.0 - to_left)))
    return total


def _hgb_goes_left(record: Any, x: float, predictor: Any, known: Any, f_idx_map: Any) -> bool:
    missing = bool(record["missing_go_to_left"])
    if np.isnan(x):
        return missing
    if not record["is_categorical"]:
        return bool(x <= record["num_threshold"])
    if x < 0:
        return missing
    code = int(x) & 255

    def has(bitsets: Any, index: int) -> bool:
        return bool((int(bitsets[index, code // 32]) >> (code % 32)) & 1)

    if has(predictor.raw_left_cat_bitsets, int(record["bitset_idx"])):
        return True
    if has(known, int(f_idx_map[int(record["feature_idx"])])):
        return False
    return missing


def _categorical_data(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 200
    cat_a = rng.integers(0, 6, n).astype(float)
    cat_b = rng.integers(0, 4, n).astype(float)
    num = rng.normal(size=(n, 2))
    score = np.isin(cat_a, [1, 3, 4]) * 1.5 + (cat_b == 2) + num[:, 0]
    y = np.digitize(score + rng.normal(scale=0.3, size=n), [0.8, 1.8][: n_classes - 1])
    X = np.column_stack([num[:, 0], cat_a, num[:, 1], cat_b])
    X[::13, 1] = np.nan
    return X, y


def _odd_rows(X: np.ndarray) -> np.ndarray:
    """Rows with unknown, negative and missing categories, as predict may meet them."""
    odd = X[:6].copy()
    odd[0, 1], odd[1, 1], odd[2, 3], odd[3, 3], odd[4, 1] = 9.0, -1.0, np.nan, 7.0, 2.0
    return np.vstack([X[:20], odd])


@pytest.mark.parametrize("n_classes", [2, 3], ids=lambda n: f"{n}-classes")
def test_hgb_categorical_splits_equal_the_brute_force(n_classes: int) -> None:
    X, y = _categorical_data(n_classes)
    model = HistGradientBoostingClassifier(
        max_iter=6, max_depth=3, categorical_features=[1, 3], random_state=0
    ).fit(X, y)
    assert any(p.nodes["is_categorical"].any() for it in model._predictors for p in it)
    rows = _odd_rows(X)
    _, values = _explain(model, rows)
    # the model encodes its categories first (unknown and negative ones become missing) and puts
    # them before the numeric columns; the values come back per input column
    internal = np.asarray(model._preprocess_X(rows, reset=False))
    order = [1, 3, 0, 2]
    for r in range(len(rows)):
        expected = from_coalition_values(_hgb_coalition_values(model, internal[r]))
        np.testing.assert_allclose(values[r, order], expected, rtol=0, atol=1e-9)


def test_hgb_categories_from_a_frame_come_back_per_input_column() -> None:
    X, y = _categorical_data(2)
    frame = pd.DataFrame(
        {
            "n0": X[:, 0],
            "a": pd.Categorical(np.where(np.isnan(X[:, 1]), None, X[:, 1].astype(str))),
            "n2": X[:, 2],
            "b": pd.Categorical(X[:, 3].astype(int).astype(str)),
        }
    )
    model = HistGradientBoostingClassifier(
        max_iter=6, max_depth=3, categorical_features="from_dtype", random_state=0
    ).fit(frame, y)
    assert model._preprocessor is not None
    rows = frame.iloc[:15]
    _, values = _explain(model, rows)
    internal = np.asarray(model._preprocess_X(rows, reset=False))
    order = [1, 3, 0, 2]  # the preprocessor puts the categorical columns first
    for r in range(len(rows)):
        phi = from_coalition_values(_hgb_coalition_values(model, internal[r]))
        np.testing.assert_allclose(values[r, order], phi, rtol=0, atol=1e-9)


def test_hgb_multiclass_with_missing_values_equals_the_brute_force() -> None:
    X, y = _classification(n_classes=3, nan=True)
    model = HistGradientBoostingClassifier(max_iter=4, max_depth=3, random_state=0).fit(X, y)
    explainer, values = _explain(model, X[:10])
    assert explainer.outputs == ("0", "1", "2")
    for r in range(10):
        phi = from_coalition_values(_hgb_coalition_values(model, X[r]))
        np.testing.assert_allclose(values[r], phi, rtol=0, atol=1e-9)


def test_the_per_row_fallback_equals_the_slow_tree_shap_on_a_deep_tree() -> None:
    X, y = make_regression(300, 20, n_informative=20, random_state=1)
    X[::9, 3] = np.nan
    model = DecisionTreeRegressor(random_state=0).fit(X, y)
    tabled = tree_explainer(model, classes=None)
    mixed = tree_explainer(model, classes=None, max_table_features=4)
    assert tabled is not None and mixed is not None
    rows = X[:5]
    fast = mixed.attribute(rows)
    np.testing.assert_allclose(tabled.attribute(rows), fast, rtol=0, atol=1e-9)
    for r in range(len(rows)):
        slow = tree_shap(model.tree_, rows[r].astype(np.float32).astype(np.float64))
        np.testing.assert_allclose(fast[r], slow, rtol=0, atol=1e-9)
    gap = np.abs(fast.sum(axis=1) + mixed.base() - mixed.output(rows)).max()
    assert gap <= 1e-9


def test_patterns_built_slot_by_slot_and_per_row_fallbacks_give_the_same_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    X, y = _categorical_data(3)
    X[::5, 0] = np.nan
    model = HistGradientBoostingClassifier(
        max_iter=5, max_depth=4, categorical_features=[1, 3], random_state=0
    ).fit(X, y)
    rows = _odd_rows(X)
    _, tabled = _explain(model, rows)
    per_row = tree_explainer(model, classes=(0, 1, 2), max_table_features=1)
    assert per_row is not None
    np.testing.assert_allclose(per_row.attribute(rows), tabled, rtol=0, atol=1e-12)
    # too little memory for per-column code tables: each path's pattern is built slot by slot
    monkeypatch.setattr(tree_paths, "CODE_BUDGET", 0)
    _, by_slot = _explain(model, rows)
    np.testing.assert_allclose(by_slot, tabled, rtol=0, atol=1e-12)


def test_no_rows_give_empty_answers() -> None:
    X, y = _classification(n_classes=3)
    for model in (
        RandomForestClassifier(3, max_depth=2, random_state=0).fit(X, y),
        HistGradientBoostingClassifier(max_iter=2).fit(X, y),
    ):
        explainer = tree_explainer(model, classes=(0, 1, 2))
        assert explainer is not None
        assert explainer.attribute(X[:0]).shape == (0, 6, 3)
        assert explainer.output(X[:0]).shape == (0, 3)


def test_models_it_does_not_handle_get_none() -> None:
    X, y = _classification()
    assert tree_explainer(LogisticRegression().fit(X, y), classes=(0, 1)) is None
    assert tree_explainer(object(), classes=None) is None
    # a link of the trees' sum is not a sum: the attributions would not add up to predict
    Xr, yr = _regression()
    poisson = HistGradientBoostingRegressor(loss="poisson", max_iter=3).fit(Xr, np.abs(yr))
    assert tree_explainer(poisson, classes=None) is None
    two_targets = DecisionTreeRegressor(max_depth=2).fit(Xr, np.column_stack([yr, yr]))
    assert tree_explainer(two_targets, classes=None) is None


def _frame_with_category(n_classes: int) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = _categorical_data(n_classes)
    frame = pd.DataFrame({"n0": X[:, 0], "n2": X[:, 2]})
    frame["a"] = pd.Categorical(np.nan_to_num(X[:, 1], nan=0).astype(int).astype(str))
    return frame, y


@pytest.mark.parametrize("n_classes", [2, 3], ids=lambda n: f"{n}-classes")
def test_xgboost_gives_its_own_contributions_and_adds_up_to_its_margin(n_classes: int) -> None:
    xgb = pytest.importorskip("xgboost")
    frame, y = _frame_with_category(n_classes)
    model = xgb.XGBClassifier(n_estimators=5, max_depth=3, enable_categorical=True, tree_method="hist").fit(
        frame, y
    )
    explainer, values = _explain(model, frame, float32=True)
    own = model.get_booster().predict(xgb.DMatrix(frame, enable_categorical=True), pred_contribs=True)
    own = own[:, None, :] if own.ndim == 2 else own
    np.testing.assert_allclose(values, np.transpose(own, (0, 2, 1))[:, :-1, :], atol=1e-6)
    names = ("1",) if n_classes == 2 else ("0", "1", "2")
    assert (explainer.method, explainer.space, explainer.outputs) == (
        "xgboost_contribs",
        "log_odds",
        names,
    )
    booster = tree_explainer(model.get_booster(), classes=tuple(model.classes_))
    assert booster is not None
    np.testing.assert_allclose(booster.attribute(frame), values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(booster.base(), explainer.base(), rtol=0, atol=1e-12)


def test_an_xgboost_regressor_explains_its_raw_prediction() -> None:
    xgb = pytest.importorskip("xgboost")
    X, y = _regression(nan=True)
    model = xgb.XGBRegressor(n_estimators=5, max_depth=3).fit(X, y)
    explainer, _ = _explain(model, X, float32=True)
    assert (explainer.space, explainer.outputs) == ("raw", ("value",))


@pytest.mark.parametrize("n_classes", [2, 3], ids=lambda n: f"{n}-classes")
def test_lightgbm_gives_its_own_contributions_and_adds_up_to_its_margin(n_classes: int) -> None:
    lgb = pytest.importorskip("lightgbm")
    frame, y = _frame_with_category(n_classes)
    model = lgb.LGBMClassifier(n_estimators=5, num_leaves=7, verbose=-1).fit(frame, y)
    explainer, values = _explain(model, frame)
    own = np.asarray(model.predict(frame, pred_contrib=True)).reshape(len(frame), -1, 4)
    np.testing.assert_allclose(values, np.transpose(own, (0, 2, 1))[:, :-1, :], atol=1e-9)
    assert explainer.method == "lightgbm_contribs" and explainer.space == "log_odds"
    booster = tree_explainer(model.booster_, classes=tuple(model.classes_))
    assert booster is not None
    np.testing.assert_allclose(booster.attribute(frame), values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(booster.output(frame), explainer.output(frame), rtol=0, atol=1e-12)


def test_boosters_without_classes_are_told_apart_by_their_objective() -> None:
    xgb = pytest.importorskip("xgboost")
    lgb = pytest.importorskip("lightgbm")
    X, y = _classification(n_classes=3)
    multi = xgb.train({"objective": "multi:softprob", "num_class": 3}, xgb.DMatrix(X, y), 2)
    binary = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, y == 1), 2)
    Xr, yr = _regression()
    regression = xgb.train({"max_depth": 2}, xgb.DMatrix(Xr, yr), 2)
    found = []
    for model, rows in ((multi, X), (binary, X), (regression, Xr)):
        explainer = tree_explainer(model, classes=None)
        assert explainer is not None
        gap = np.abs(explainer.attribute(rows).sum(axis=1) + explainer.base() - explainer.output(rows)).max()
        assert gap <= 1e-6 * max(1.0, float(np.abs(explainer.output(rows)).max()))
        found.append((explainer.space, explainer.outputs))
    assert found == [
        ("log_odds", ("0", "1", "2")),
        ("log_odds", ("1",)),
        ("raw", ("value",)),
    ]


def test_a_lightgbm_regressor_explains_its_raw_score() -> None:
    lgb = pytest.importorskip("lightgbm")
    X, y = _regression(nan=True)
    model = lgb.LGBMRegressor(n_estimators=5, num_leaves=7, verbose=-1).fit(X, y)
    explainer, _ = _explain(model, X)
    assert (explainer.space, explainer.outputs) == ("raw", ("value",))
