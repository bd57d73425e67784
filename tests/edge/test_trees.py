"""scikit-learn's tree models read into the neutral Ensemble answer as the models do, to the
last bits, on random rows, missing values, rows at every threshold and the extremes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from threadpoolctl import threadpool_limits

from fitted_trees import (
    CLASSIFIERS,
    NAN_FREE,
    REGRESSORS,
    TARGETS,
    as_codes,
    categorical_frame,
    fit,
    regression,
    trying_rows,
    unseen_rows,
)
from shipyard.edge.ensemble import Ensemble, Tree
from shipyard.edge.trees import read_ensemble
from shipyard.errors import UnsupportedExportError


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """HistGradientBoosting's OpenMP threads spin against each other on a busy machine."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def _read(model: Any) -> Ensemble:
    found = read_ensemble(model)
    assert found is not None
    return found


CASES = [(name, target) for name in sorted(CLASSIFIERS) for target in ("binary", "multiclass")] + [
    (name, "strings") for name in ("boosting", "forest", "histogram")
]


@pytest.mark.parametrize(("name", "target"), CASES)
def test_classifier_answers_and_labels_equal_the_model(name: str, target: str) -> None:
    model, x = fit(CLASSIFIERS[name](), TARGETS[target]())
    ensemble = _read(model)
    rows = trying_rows(ensemble, x, missing=type(model).__name__ not in NAN_FREE)
    np.testing.assert_allclose(ensemble.answers(rows), model.predict_proba(rows), rtol=0, atol=1e-12)
    assert (ensemble.labels(rows) == model.predict(rows)).all()
    assert ensemble.classes == tuple(model.classes_.tolist())


@pytest.mark.parametrize("name", sorted(REGRESSORS))
def test_regressor_answers_equal_the_model(name: str) -> None:
    model, x = fit(REGRESSORS[name](), regression())
    ensemble = _read(model)
    rows = trying_rows(ensemble, x, missing=type(model).__name__ not in NAN_FREE)
    np.testing.assert_allclose(ensemble.answers(rows), model.predict(rows), rtol=0, atol=1e-10)
    assert ensemble.classes is None


def test_exponential_loss_boosting_answers_its_doubled_logistic() -> None:
    model, x = fit(GradientBoostingClassifier(n_estimators=10, loss="exponential"), TARGETS["binary"]())
    ensemble = _read(model)
    rows = trying_rows(ensemble, x, missing=False)
    np.testing.assert_allclose(ensemble.answers(rows), model.predict_proba(rows), rtol=0, atol=1e-12)
    assert (ensemble.labels(rows) == model.predict(rows)).all()


@pytest.mark.parametrize("estimator", [HistGradientBoostingClassifier, HistGradientBoostingRegressor])
def test_histogram_categories_read_with_missing_and_unseen_values(estimator: Any) -> None:
    frame, score = categorical_frame()
    target = (score > 0.8).astype(int) if estimator is HistGradientBoostingClassifier else score
    model = estimator(max_iter=15, categorical_features=["letter", "level"], random_state=0)
    model.fit(frame, target)
    ensemble = _read(model)
    rows = unseen_rows(frame)
    got = ensemble.answers(as_codes(ensemble, rows))
    want = model.predict_proba(rows) if hasattr(model, "classes_") else model.predict(rows)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert any(tree.categories for tree in ensemble.trees)


def test_string_categories_are_given_in_code_order_at_their_input_column() -> None:
    frame, score = categorical_frame()
    model = HistGradientBoostingClassifier(max_iter=5, categorical_features="from_dtype")
    model.fit(frame, np.digitize(score, [0.0, 1.0]))
    ensemble = _read(model)
    # the model's preprocessor puts 'letter' first internally; the ensemble keeps input order
    assert list(ensemble.categories) == [1]
    assert ensemble.categories[1] == tuple("abcdefghijkl")
    assert {int(t.feature[node]) for t in ensemble.trees for node in t.categories} == {1}
    rows = unseen_rows(frame)
    np.testing.assert_allclose(
        ensemble.answers(as_codes(ensemble, rows)), model.predict_proba(rows), rtol=0, atol=1e-12
    )
    assert (ensemble.labels(as_codes(ensemble, rows)) == model.predict(rows)).all()


def test_numeric_categories_are_read_in_their_values() -> None:
    frame, score = categorical_frame()
    model = HistGradientBoostingRegressor(max_iter=10, categorical_features=["level"]).fit(
        frame[["a", "level"]], score
    )
    ensemble = _read(model)
    assert ensemble.categories == {}
    members = np.concatenate([v for t in ensemble.trees for v in t.categories.values()])
    assert set(members) <= {3.0, 7.0, 10.0, 11.5, 20.0}


def test_gradient_boosting_with_a_fitted_init_estimator_is_refused() -> None:
    x, y = TARGETS["binary"]()
    model = GradientBoostingClassifier(n_estimators=3, init=LogisticRegression()).fit(np.nan_to_num(x), y)
    with pytest.raises(UnsupportedExportError, match="init=None"):
        read_ensemble(model)
    prior = GradientBoostingClassifier(n_estimators=3, init=DummyClassifier(strategy="prior"))
    assert read_ensemble(prior.fit(np.nan_to_num(x), y)) is not None


def test_log_link_histogram_regressor_is_refused() -> None:
    x, y = regression()
    model = HistGradientBoostingRegressor(max_iter=3, loss="poisson").fit(x, np.abs(y))
    with pytest.raises(UnsupportedExportError, match="poisson"):
        read_ensemble(model)


def test_multi_output_forest_is_refused() -> None:
    x, y = regression()
    model = RandomForestRegressor(3, max_depth=3).fit(x, np.column_stack([y, -y]))
    with pytest.raises(UnsupportedExportError, match="2 outputs"):
        read_ensemble(model)


def test_models_that_are_not_trees_give_none() -> None:
    x, y = regression()
    assert read_ensemble(LinearRegression().fit(np.nan_to_num(x), y)) is None
    assert read_ensemble(object()) is None


def test_labels_at_zero_follow_the_framework() -> None:
    stump = Tree(
        feature=np.array([0, -1, -1]),
        threshold=np.array([0.0, 0.0, 0.0]),
        left=np.array([1, -1, -1]),
        right=np.array([2, -1, -1]),
        missing_left=np.array([True, False, False]),
        value=np.array([[0.0], [0.0], [1.0]]),
    )
    at_zero = Ensemble((stump,), 1, 1, (0,), np.zeros(1), post="logistic", classes=("no", "yes"))
    rows = np.array([[-1.0], [1.0]])
    assert at_zero.labels(rows).tolist() == ["no", "yes"]  # scikit-learn's HGB: raw > 0
    inclusive = Ensemble(
        (stump,), 1, 1, (0,), np.zeros(1), post="logistic", classes=("no", "yes"), positive_at_zero=True
    )
    assert inclusive.labels(rows).tolist() == ["yes", "yes"]  # GradientBoosting: raw >= 0


def test_xgboost_models_are_read_by_the_boosters_reader() -> None:
    boosters = pytest.importorskip("shipyard.edge.boosters")
    xgboost = pytest.importorskip("xgboost")
    x, y = TARGETS["binary"]()
    model = xgboost.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1).fit(x, y)
    found = _read(model)
    assert len(found.trees) == len(boosters.read_booster(model).trees)
