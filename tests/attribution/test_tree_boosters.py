"""XGBoost and LightGBM explained by their own contributions: the values are the framework's
pred_contribs / pred_contrib without the bias column, the base is that column, the output the
margin; binary, multiclass, regression, bare Boosters and categorical features."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression

from shipyard.attribution.tree_boosters import BoosterExplainer, booster_explainer


def classification(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(150, 5, n_informative=4, n_redundant=0, n_classes=n_classes, random_state=0)
    x[::7, 2] = np.nan
    return x, y


def regression() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_regression(150, 5, random_state=0)
    x[::7, 2] = np.nan
    return x, y


def categorical_frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=200),
            "colour": pd.Categorical(rng.choice(["red", "green", "blue", "grey"], 200)),
            "z": rng.normal(size=200),
        }
    )
    y = ((frame["colour"] == "red") | (frame["x"] > 0.5)).astype(int).to_numpy()
    return frame, y


def checked(explainer: Any, x: Any, contribs: np.ndarray, margin: np.ndarray, float32: bool) -> None:
    """The explainer's values, base and output are the framework's own, and add up."""
    assert isinstance(explainer, BoosterExplainer)
    values, base, output = explainer.attribute(x), explainer.base(), explainer.output(x)
    rows, width = len(x), explainer.n_columns
    k = len(explainer.outputs)
    assert values.shape == (rows, width, k) and output.shape == (rows, k) and base.shape == (k,)
    assert values.dtype == output.dtype == base.dtype == np.float64
    np.testing.assert_array_equal(values, contribs[:, :-1, :])
    np.testing.assert_allclose(base, contribs[0, -1, :], rtol=0, atol=0)
    np.testing.assert_allclose(contribs[:, -1, :], np.broadcast_to(base, (rows, k)), rtol=0, atol=1e-6)
    np.testing.assert_allclose(output, margin.reshape(rows, k), rtol=0, atol=0)
    tolerance = 1e-6 * max(1.0, float(np.abs(output).max())) if float32 else 1e-9
    assert np.abs(values.sum(axis=1) + base - output).max() <= tolerance
    assert explainer.attribute(x[:0]).shape == (0, width, k)
    assert explainer.output(x[:0]).shape == (0, k)
    base[...] = 123.0  # base() is a copy
    assert not np.any(explainer.base() == 123.0)


def by_output(raw: Any, rows: int, width: int) -> np.ndarray:
    array = np.asarray(raw, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == width:
        return array[:, :, None]
    return array.reshape(rows, -1, width).transpose(0, 2, 1)


XGB_CASES = [("regression", None), ("binary", 2), ("three-classes", 3)]


@pytest.mark.parametrize(("kind", "n_classes"), XGB_CASES, ids=[k for k, _ in XGB_CASES])
def test_xgboost_wrappers_are_explained_by_their_own_pred_contribs(kind: str, n_classes: int | None) -> None:
    xgb = pytest.importorskip("xgboost")
    if n_classes is None:
        x, y = regression()
        model = xgb.XGBRegressor(n_estimators=8, max_depth=3).fit(x, y)
        classes = None
    else:
        x, y = classification(n_classes)
        model = xgb.XGBClassifier(n_estimators=8, max_depth=3).fit(x, y)
        classes = tuple(model.classes_)
    explainer = booster_explainer(model, classes=classes)
    assert explainer is not None
    assert explainer.method == "xgboost_contribs"
    rows = x[:20]
    contribs = by_output(model.get_booster().predict(xgb.DMatrix(rows), pred_contribs=True), 20, 6)
    checked(explainer, rows, contribs, np.asarray(model.predict(rows, output_margin=True)), float32=True)
    if n_classes is None:
        assert (explainer.space, explainer.outputs) == ("raw", ("value",))
    elif n_classes == 2:
        assert (explainer.space, explainer.outputs) == ("log_odds", ("1",))  # the positive class's margin
    else:
        assert (explainer.space, explainer.outputs) == ("log_odds", ("0", "1", "2"))


def test_a_bare_xgboost_booster_names_its_outputs_by_its_objective() -> None:
    xgb = pytest.importorskip("xgboost")
    x, y = classification(3)
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2}, xgb.DMatrix(x, y), 4)
    explainer = booster_explainer(booster, classes=None)
    assert explainer is not None
    assert (explainer.space, explainer.outputs) == ("log_odds", ("0", "1", "2"))
    contribs = by_output(booster.predict(xgb.DMatrix(x[:10]), pred_contribs=True), 10, 6)
    checked(
        explainer, x[:10], contribs, booster.predict(xgb.DMatrix(x[:10]), output_margin=True), float32=True
    )
    binary = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, (y == 1).astype(int)), 3)
    found = booster_explainer(binary, classes=None)
    assert found is not None and (found.space, found.outputs) == ("log_odds", ("1",))
    regressor = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(x, y.astype(float)), 3)
    found = booster_explainer(regressor, classes=None)
    assert found is not None and (found.space, found.outputs) == ("raw", ("value",))


def test_xgboost_categorical_features_are_explained_on_their_frame() -> None:
    xgb = pytest.importorskip("xgboost")
    frame, y = categorical_frame()
    model = xgb.XGBClassifier(n_estimators=6, max_depth=3, enable_categorical=True, tree_method="hist").fit(
        frame, y
    )
    explainer = booster_explainer(model, classes=(0, 1))
    assert explainer is not None
    rows = frame.iloc[:15]
    raw = model.get_booster().predict(xgb.DMatrix(rows, enable_categorical=True), pred_contribs=True)
    checked(explainer, rows, by_output(raw, 15, 4), model.predict(rows, output_margin=True), float32=True)
    assert np.abs(explainer.attribute(rows)[:, 1]).max() > 0  # the colour matters


LGB_CASES = [("regression", None), ("binary", 2), ("three-classes", 3)]


@pytest.mark.parametrize(("kind", "n_classes"), LGB_CASES, ids=[k for k, _ in LGB_CASES])
def test_lightgbm_wrappers_are_explained_by_their_own_pred_contrib(kind: str, n_classes: int | None) -> None:
    lgb = pytest.importorskip("lightgbm")
    options = {"n_estimators": 8, "num_leaves": 7, "min_child_samples": 5, "verbose": -1}
    if n_classes is None:
        x, y = regression()
        model = lgb.LGBMRegressor(**options).fit(x, y)
        classes = None
    else:
        x, y = classification(n_classes)
        model = lgb.LGBMClassifier(**options).fit(x, y)
        classes = tuple(model.classes_)
    explainer = booster_explainer(model, classes=classes)
    assert explainer is not None
    assert explainer.method == "lightgbm_contribs"
    rows = x[:20]
    contribs = by_output(model.predict(rows, pred_contrib=True), 20, 6)
    checked(explainer, rows, contribs, np.asarray(model.predict(rows, raw_score=True)), float32=False)
    expected = {None: ("raw", ("value",)), 2: ("log_odds", ("1",)), 3: ("log_odds", ("0", "1", "2"))}
    assert (explainer.space, explainer.outputs) == expected[n_classes]


def test_a_bare_lightgbm_booster_and_string_classes() -> None:
    lgb = pytest.importorskip("lightgbm")
    x, y = classification(3)
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 5, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=4)
    explainer = booster_explainer(booster, classes=None)
    assert explainer is not None
    assert (explainer.space, explainer.outputs) == ("log_odds", ("0", "1", "2"))
    contribs = by_output(booster.predict(x[:10], pred_contrib=True), 10, 6)
    checked(explainer, x[:10], contribs, booster.predict(x[:10], raw_score=True), float32=False)
    labels = np.array(["no", "yes"])[(y == 1).astype(int)]
    model = lgb.LGBMClassifier(n_estimators=4, num_leaves=5, verbose=-1).fit(x, labels)
    found = booster_explainer(model, classes=None)  # the wrapper's own classes
    assert found is not None and (found.space, found.outputs) == ("log_odds", ("yes",))


def test_lightgbm_categorical_features_are_explained_on_their_frame() -> None:
    lgb = pytest.importorskip("lightgbm")
    frame, y = categorical_frame()
    # small categories may split (LightGBM's default needs 100 rows per category group)
    model = lgb.LGBMClassifier(
        n_estimators=6, num_leaves=7, min_child_samples=5, min_data_per_group=5, cat_smooth=1, verbose=-1
    ).fit(frame, y)
    explainer = booster_explainer(model, classes=(0, 1))
    assert explainer is not None
    rows = frame.iloc[:15]
    contribs = by_output(model.predict(rows, pred_contrib=True), 15, 4)
    checked(explainer, rows, contribs, model.predict(rows, raw_score=True), float32=False)
    assert np.abs(explainer.attribute(rows)[:, 1]).max() > 0


def test_other_models_and_unfitted_wrappers_get_none() -> None:
    x, y = regression()
    assert booster_explainer(LinearRegression().fit(np.nan_to_num(x), y), classes=None) is None
    assert booster_explainer(object(), classes=None) is None
    lgb = pytest.importorskip("lightgbm")
    assert booster_explainer(lgb.LGBMRegressor(), classes=None) is None
    xgb = pytest.importorskip("xgboost")
    assert booster_explainer(xgb.XGBRegressor(), classes=None) is None
