"""XGBoost and LightGBM read into the neutral `Ensemble`: its reference scoring answers as the
framework does on random rows, missing values, zeros, rows exactly at (and next to) every split
threshold, and categorical columns with seen, unseen and missing categories."""

from __future__ import annotations

from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost

from shipyard.edge.boosters import read_booster
from shipyard.edge.ensemble import Ensemble
from shipyard.errors import UnsupportedExportError
from shipyard.flavors.base import LoadOptions
from shipyard.flavors.lightgbm import LightGBMFlavor
from shipyard.flavors.xgboost import XGBoostFlavor

ROWS = 300
LEVELS = ("red", "green", "blue", "grey", "pink", "teal")
XGB_TOLERANCE = 1e-6  # XGBoost sums its leaves in float32
LGB_TOLERANCE = 1e-12
"""Largest differences allowed, relative to max(1, |answer|)."""


def _data(task: str, *, categorical: bool = False, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric columns with missing values and exact zeros, optionally two pandas categoricals."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(ROWS, 4))
    numeric[rng.random(numeric.shape) < 0.1] = np.nan
    numeric[rng.random(numeric.shape) < 0.1] = 0.0
    frame = pd.DataFrame(numeric, columns=["a", "b", "c", "d"])
    signal = np.nan_to_num(numeric[:, 0]) + np.isnan(numeric[:, 1]) - (numeric[:, 2] == 0)
    if categorical:
        colour = rng.integers(0, len(LEVELS), ROWS)
        size = rng.integers(0, 3, ROWS)
        fitted = np.where(rng.random(ROWS) < 0.1, -1, colour)  # -1: missing
        frame["colour"] = pd.Categorical.from_codes(fitted, categories=list(LEVELS))
        frame["size"] = pd.Categorical.from_codes(size, categories=[10, 20, 30])
        signal = signal + np.array([1.5, -1.0, 0.5, -2.0, 2.0, 0.0])[colour] + (size == 1)
    signal = signal + rng.normal(scale=0.3, size=ROWS)
    if task == "binary":
        return frame, (signal > 0.3).astype(int)
    if task == "multiclass":
        return frame, np.digitize(signal, [-0.3, 0.8])
    return frame, signal


def _codes(frame: pd.DataFrame, ensemble: Ensemble) -> np.ndarray:
    """The rows as an export gives them to the `Ensemble`: a category as its position in
    `Ensemble.categories`, NaN when missing or unseen."""
    columns = []
    for column, name in enumerate(frame.columns):
        values = frame[name]
        if column in ensemble.categories:
            codes = values.astype(object).map(
                {v: float(i) for i, v in enumerate(ensemble.categories[column])}
            )
            columns.append(codes.astype(np.float64).to_numpy())
        else:
            columns.append(values.to_numpy(dtype=np.float64))
    return np.column_stack(columns)


def _probes(ensemble: Ensemble, frame: pd.DataFrame) -> pd.DataFrame:
    """The fitted rows plus edge rows: all missing, all zero, +-1e-35, and each numeric column
    exactly at, just below and just above every threshold its splits use."""
    numeric = [name for name in frame.columns if not isinstance(frame[name].dtype, pd.CategoricalDtype)]
    edges = [
        frame.iloc[[0]].assign(**dict.fromkeys(numeric, value)) for value in (np.nan, 0.0, 1e-35, -1e-35)
    ]
    for column, points in ensemble.split_points().items():
        name = frame.columns[column]
        finite = points[np.abs(points) < 1e300]  # LightGBM writes an infinite threshold as +-1e300
        at = np.concatenate([points, np.nextafter(finite, -np.inf), np.nextafter(finite, np.inf)])
        rows = frame.iloc[np.arange(len(at)) % len(frame)].copy()
        rows[name] = at
        edges.append(rows)
    return pd.concat([frame, *edges], ignore_index=True)


def _framework_answers(model: Any, rows: pd.DataFrame) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(rows), dtype=np.float64)
    if isinstance(model, xgboost.Booster):
        return np.asarray(model.inplace_predict(rows), dtype=np.float64)
    return np.asarray(model.predict(rows), dtype=np.float64)


def _max_diff(model: Any, ensemble: Ensemble, rows: pd.DataFrame) -> float:
    """The largest difference between the framework's answers and the `Ensemble`'s, relative to
    max(1, |answer|); labels must agree."""
    ours = ensemble.answers(_codes(rows, ensemble))
    theirs = _framework_answers(model, rows)
    if ensemble.classes is not None:
        theirs = np.column_stack([1 - theirs, theirs]) if theirs.ndim == 1 else theirs
        assert ours.shape == theirs.shape
        if hasattr(model, "predict_proba"):
            labels = np.asarray(ensemble.classes, dtype=object)[ours.argmax(axis=1)]
            assert (labels == np.asarray(model.predict(rows), dtype=object)).all()
    return float((np.abs(ours - theirs) / np.maximum(1.0, np.abs(theirs))).max())


def _xgb(task: str, **options: Any) -> Any:
    kind = xgboost.XGBRegressor if task == "regression" else xgboost.XGBClassifier
    settings = {"n_estimators": 20, "max_depth": 4, "n_jobs": 1, "tree_method": "hist"} | options
    return kind(**settings)


def _lgb(task: str, **options: Any) -> Any:
    kind = lightgbm.LGBMRegressor if task == "regression" else lightgbm.LGBMClassifier
    settings = {"n_estimators": 20, "num_leaves": 8, "min_child_samples": 5, "verbose": -1, "n_jobs": 1}
    return kind(**(settings | options))


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("categorical", [False, True])
def test_xgboost_answers_as_the_ensemble_does(task: str, categorical: bool) -> None:
    frame, y = _data(task, categorical=categorical)
    model = _xgb(task, enable_categorical=categorical, max_cat_to_onehot=4 if categorical else None)
    ensemble = read_booster(model.fit(frame, y))
    assert ensemble is not None and ensemble.strict and ensemble.float32_inputs
    assert _max_diff(model, ensemble, _probes(ensemble, frame)) < XGB_TOLERANCE
    if categorical:
        assert ensemble.categories == {4: LEVELS, 5: (10, 20, 30)}
        assert any(tree.categories for tree in ensemble.trees)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("categorical", [False, True])
def test_lightgbm_answers_as_the_ensemble_does(task: str, categorical: bool) -> None:
    frame, y = _data(task, categorical=categorical)
    model = _lgb(task, min_data_per_group=5, cat_smooth=1.0).fit(frame, y)
    ensemble = read_booster(model)
    assert ensemble is not None and not ensemble.strict and not ensemble.float32_inputs
    assert _max_diff(model, ensemble, _probes(ensemble, frame)) < LGB_TOLERANCE
    booster = read_booster(model.booster_)
    assert booster is not None and _max_diff(model.booster_, booster, _probes(booster, frame)) < LGB_TOLERANCE
    if categorical:
        assert ensemble.categories == {4: LEVELS, 5: (10, 20, 30)}
        assert any(tree.categories for tree in ensemble.trees)


def _unseen_and_missing(frame: pd.DataFrame, unseen: bool) -> pd.DataFrame:
    """The frame with a third of the colours missing and a third unseen ('mauve', or missing for a
    framework that refuses unseen categories), each column's categories in a new order: only
    those present, sorted."""
    colours = frame["colour"].astype(object).to_numpy().copy()
    colours[::3] = None
    colours[1::3] = "mauve" if unseen else None
    sizes = frame["size"].astype(object).to_numpy().copy()
    sizes[::4] = None
    return frame.assign(colour=pd.Categorical(colours), size=pd.Categorical(sizes))


def test_lightgbm_sends_unseen_and_missing_categories_where_lightgbm_does() -> None:
    frame, y = _data("binary", categorical=True)
    model = _lgb("binary", min_data_per_group=5, cat_smooth=1.0).fit(frame, y)
    ensemble = read_booster(model)
    assert ensemble is not None
    rows = _unseen_and_missing(frame, unseen=True)
    ours = ensemble.answers(_codes(rows, ensemble))
    assert np.abs(ours - model.predict_proba(rows)).max() < LGB_TOLERANCE


def test_xgboost_sends_missing_categories_to_each_split_default() -> None:
    """An export reads an unseen category as missing; XGBoost 3.2 itself has no answer to compare
    with: it reads one as the next fitted category in sorted order, or refuses one sorting last
    (dmlc/xgboost#12189)."""
    frame, y = _data("multiclass", categorical=True)
    model = _xgb("multiclass", enable_categorical=True, max_cat_to_onehot=1).fit(frame, y)
    ensemble = read_booster(model)
    assert ensemble is not None
    rows = _unseen_and_missing(frame, unseen=False)
    assert _max_diff(model, ensemble, rows) < XGB_TOLERANCE


@pytest.mark.parametrize("missing", [{"zero_as_missing": True}, {"use_missing": False}])
def test_lightgbm_zero_as_missing_and_no_missing_are_written_as_plain_splits(
    missing: dict[str, bool],
) -> None:
    frame, y = _data("regression")
    model = _lgb("regression", **missing).fit(frame, y)
    ensemble = read_booster(model)
    assert ensemble is not None
    assert _max_diff(model, ensemble, _probes(ensemble, frame)) < LGB_TOLERANCE


def test_lightgbm_sigmoid_dart_and_random_forest_mode_are_kept() -> None:
    frame, y = _data("binary")
    for model in (
        _lgb("binary", boosting_type="rf", subsample=0.8, subsample_freq=1, sigmoid=0.7),
        _lgb("binary", boosting_type="dart", drop_rate=0.3),
    ):
        ensemble = read_booster(model.fit(frame, y))
        assert ensemble is not None and ensemble.average == (model.boosting_type == "rf")
        assert _max_diff(model, ensemble, _probes(ensemble, frame)) < LGB_TOLERANCE


def test_a_bare_booster_takes_the_classes_it_is_given() -> None:
    frame, y = _data("multiclass")
    booster = _lgb("multiclass").fit(frame, np.array(["low", "mid", "high"])[y]).booster_
    assert read_booster(booster) is not None and read_booster(booster).classes == (0, 1, 2)  # type: ignore[union-attr]
    named = read_booster(booster, classes=["high", "low", "mid"])
    assert named is not None and named.classes == ("high", "low", "mid")
    with pytest.raises(UnsupportedExportError, match="3 classes but 2 labels"):
        read_booster(booster, classes=["low", "high"])


@pytest.mark.parametrize("flavor", [XGBoostFlavor(), LightGBMFlavor()], ids=["xgboost", "lightgbm"])
def test_a_registered_version_reads_as_the_model_it_was_saved_from(flavor: Any) -> None:
    """What the registry loads (a reloaded wrapper, a Booster from text) gives the same ensemble."""
    frame, y = _data("multiclass", categorical=True)
    labels = np.array(["low", "mid", "high"])
    if isinstance(flavor, XGBoostFlavor):
        model = _xgb("multiclass", enable_categorical=True).fit(frame, y)
    else:
        model = _lgb("multiclass", min_data_per_group=5, cat_smooth=1.0).fit(frame, labels[y])
    loaded = flavor.load(flavor.save(model), LoadOptions())
    ensemble, original = read_booster(loaded.model, classes=loaded.classes), read_booster(model)
    assert ensemble is not None and original is not None
    assert ensemble.classes == original.classes and ensemble.categories == original.categories
    assert np.array_equal(
        ensemble.answers(_codes(frame, ensemble)), original.answers(_codes(frame, original))
    )


def test_string_labels_of_a_lightgbm_classifier_are_its_classes() -> None:
    frame, y = _data("binary")
    model = _lgb("binary").fit(frame, np.array(["no", "yes"])[y])
    ensemble = read_booster(model)
    assert ensemble is not None and ensemble.classes == ("no", "yes")
    assert _max_diff(model, ensemble, frame) < LGB_TOLERANCE


def test_xgboost_booster_dart_forest_and_early_stopping_are_read() -> None:
    frame, y = _data("binary", seed=1)
    numbers = frame.to_numpy()
    for model in (
        _xgb("binary", booster="dart", rate_drop=0.3).fit(numbers, y),
        xgboost.XGBRFClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(numbers, y),
        _xgb("multiclass", num_parallel_tree=2, n_estimators=5).fit(numbers, _data("multiclass", seed=1)[1]),
        _xgb("binary", n_estimators=50, early_stopping_rounds=2, learning_rate=0.9).fit(
            numbers[:200], y[:200], eval_set=[(numbers[200:], y[200:])], verbose=False
        ),
    ):
        ensemble = read_booster(model)
        assert ensemble is not None
        assert _max_diff(model, ensemble, _probes(ensemble, frame)) < XGB_TOLERANCE
        booster = read_booster(model.get_booster())
        assert booster is not None and booster.classes == ensemble.classes
        assert _max_diff(model.get_booster(), booster, _probes(booster, frame)) < XGB_TOLERANCE


@pytest.mark.parametrize(
    ("model", "named"),
    [
        (xgboost.XGBRegressor(n_estimators=2, objective="count:poisson"), "count:poisson"),
        (xgboost.XGBRegressor(n_estimators=2, booster="gblinear"), "gblinear"),
        (xgboost.XGBRegressor(n_estimators=2, missing=0.0), "missing=0.0"),
        (lightgbm.LGBMRegressor(n_estimators=2, objective="poisson", verbose=-1), "poisson"),
        (lightgbm.LGBMClassifier(n_estimators=2, objective="multiclassova", verbose=-1), "multiclassova"),
        (lightgbm.LGBMRegressor(n_estimators=2, linear_tree=True, verbose=-1), "linear trees"),
    ],
)
def test_objectives_without_an_exact_form_are_refused_by_name(model: Any, named: str) -> None:
    frame, y = _data("multiclass")
    with pytest.raises(UnsupportedExportError, match=named):
        read_booster(model.fit(frame.fillna(0.0), y))


def test_other_models_are_not_boosters() -> None:
    assert read_booster(object()) is None
    assert read_booster(lightgbm.LGBMClassifier()) is None  # not fitted: no booster yet
    assert read_booster(xgboost.XGBRegressor()) is None
