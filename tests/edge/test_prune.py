"""Pruning keeps the smallest model within the metric bound: MLP and linear weights, boosting
rounds, forest trees."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from shipyard.edge.ensemble import Ensemble, Tree
from shipyard.edge.headline import Headline, MetricDrop
from shipyard.edge.prune import prune
from shipyard.errors import ExportError, InputError, UnsupportedExportError


def _tree(fitted: Any, *, scale: float = 1.0, fractions: bool = False) -> Tree:
    """One scikit-learn decision tree in the neutral form (the test's own small reader)."""
    tree = fitted.tree_
    leaf = tree.children_left < 0
    value = tree.value[:, 0, :].astype(np.float64) * scale
    if fractions:
        value = value / value.sum(axis=1, keepdims=True)
    return Tree(
        feature=np.where(leaf, -1, tree.feature).astype(np.int64),
        threshold=tree.threshold.astype(np.float64),
        left=tree.children_left.astype(np.int64),
        right=tree.children_right.astype(np.int64),
        missing_left=np.asarray(getattr(tree, "missing_go_to_left", np.zeros(tree.node_count)), dtype=bool),
        value=value,
    )


def _boosting(model: Any, x: np.ndarray) -> Ensemble:
    rounds, width = model.estimators_.shape
    trees = tuple(
        _tree(model.estimators_[r, k], scale=model.learning_rate) for r in range(rounds) for k in range(width)
    )
    classes = tuple(model.classes_.tolist()) if hasattr(model, "classes_") else None
    return Ensemble(
        trees=trees,
        n_features=x.shape[1],
        n_outputs=width,
        targets=tuple(k for _ in range(rounds) for k in range(width)) if width > 1 else (None,) * len(trees),
        base=np.asarray(model._raw_predict_init(x[:1])[0], dtype=np.float64),
        post="none" if classes is None else ("logistic" if width == 1 else "softmax"),
        float32_inputs=True,
        classes=classes,
    )


def _forest(model: Any, x: np.ndarray) -> Ensemble:
    return Ensemble(
        trees=tuple(_tree(t, fractions=True) for t in model.estimators_),
        n_features=x.shape[1],
        n_outputs=len(model.classes_),
        targets=(None,) * len(model.estimators_),
        base=np.zeros(len(model.classes_)),
        average=True,
        float32_inputs=True,
        classes=tuple(model.classes_.tolist()),
    )


def _quiet_mlp(x: np.ndarray, y: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=200, random_state=0)).fit(x, y)


def test_an_mlp_is_pruned_to_the_sparsest_share_within_the_bound_on_a_copy() -> None:
    x, y = make_classification(900, 20, n_informative=6, random_state=0)
    x = x.astype(np.float32)
    model = _quiet_mlp(x[:600], y[:600])
    original = [w.copy() for w in model[-1].coefs_]
    pruned = prune(
        model,
        holdout_x=x[600:],
        holdout_y=y[600:],
        task="classification",
        export=lambda m: to_onnx(m, x[:1], options={"zipmap": False}),
        repeats=2,
    )
    assert pruned.sparsity is not None and pruned.sparsity >= 0.3
    assert pruned.metric.within(0.005)
    assert all(drop > 0.005 for sparsity, drop in pruned.tried if sparsity > pruned.sparsity)
    assert all(np.array_equal(a, b) for a, b in zip(original, model[-1].coefs_, strict=True))
    weights = np.concatenate([w.ravel() for w in pruned.model[-1].coefs_])
    assert abs(np.mean(weights == 0) - pruned.sparsity) < 0.01
    assert pruned.size_before is not None and pruned.size_after is not None
    assert pruned.size_after.zipped < 0.9 * pruned.size_before.zipped  # zeros compress
    assert abs(pruned.size_after.file - pruned.size_before.file) < 0.05 * pruned.size_before.file
    report = pruned.to_dict()
    assert report["latency"]["measured_on"] == "onnx"


def test_a_linear_regressor_is_pruned_within_its_mae_bound() -> None:
    x, y = make_regression(600, 30, n_informative=5, noise=0.1, random_state=0)
    y = y / np.abs(y).max()
    model = Ridge(alpha=1e-3).fit(x[:400], y[:400])
    pruned = prune(
        model, holdout_x=x[400:], holdout_y=y[400:], task="regression", max_metric_drop=0.005, repeats=1
    )
    assert set(pruned.metric.before) == {"mae", "rmse", "r2"}
    assert pruned.metric.within(0.005)
    assert pruned.sparsity is not None and pruned.sparsity >= 0.8  # 25 of 30 features carry nothing
    assert np.mean(pruned.model.coef_ == 0) == pytest.approx(pruned.sparsity, abs=0.02)


def test_no_sparsity_within_the_bound_is_refused() -> None:
    x, y = make_classification(600, 10, n_informative=10, n_redundant=0, random_state=0)
    model = LogisticRegression().fit(x[:400], y[:400])
    with pytest.raises(ExportError, match="no sparsity stays within"):
        prune(
            model,
            holdout_x=x[400:],
            holdout_y=y[400:],
            task="classification",
            max_metric_drop=0.0,
            sparsities=(0.95,),
        )


def test_boosting_keeps_the_fewest_first_rounds_within_the_bound() -> None:
    x, y = make_regression(500, 6, noise=5.0, random_state=0)
    y = y / np.abs(y).max()
    model = GradientBoostingRegressor(n_estimators=60, max_depth=2, random_state=0).fit(x[:300], y[:300])
    ensemble = _boosting(model, x)
    assert np.allclose(ensemble.answers(x[300:]), model.predict(x[300:]))
    pruned = prune(
        ensemble, holdout_x=x[300:], holdout_y=y[300:], task="regression", max_metric_drop=0.01, repeats=1
    )
    kept = pruned.model
    assert pruned.trees is not None and pruned.trees[1] < 60
    assert kept.trees == ensemble.trees[: len(kept.trees)]
    metric = Headline("regression", y[300:])
    original = metric.of(model.predict(x[300:]))
    assert MetricDrop(original, metric.of(kept.answers(x[300:]))).within(0.01)
    shorter = ensemble.select(range(len(kept.trees) - 1))
    assert not MetricDrop(original, metric.of(shorter.answers(x[300:]))).within(0.01)


def test_multiclass_boosting_keeps_whole_rounds() -> None:
    x, y = make_classification(450, 6, n_informative=4, n_classes=3, random_state=0)
    model = GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0).fit(x[:300], y[:300])
    ensemble = _boosting(model, x)
    assert np.allclose(ensemble.answers(x[300:]), model.predict_proba(x[300:]))
    pruned = prune(
        ensemble, holdout_x=x[300:], holdout_y=y[300:], task="classification", max_metric_drop=0.02, repeats=1
    )
    assert len(pruned.model.trees) % 3 == 0
    assert pruned.model.targets == ensemble.targets[: len(pruned.model.trees)]
    assert pruned.metric.within(0.02)


def test_a_forest_drops_its_least_useful_trees_within_the_bound() -> None:
    x, y = make_classification(600, 8, n_informative=5, random_state=1)
    model = RandomForestClassifier(n_estimators=30, max_depth=4, random_state=0).fit(x[:400], y[:400])
    ensemble = _forest(model, x)
    assert np.allclose(ensemble.answers(x[400:]), model.predict_proba(x[400:]))
    pruned = prune(
        ensemble,
        holdout_x=x[400:],
        holdout_y=y[400:],
        task="classification",
        max_metric_drop=0.005,
        repeats=1,
    )
    assert pruned.trees is not None and pruned.trees[1] < 30
    metric = Headline("classification", y[400:], classes=model.classes_.tolist())
    after = metric.of_scores(pruned.model.answers(x[400:]))
    assert MetricDrop(metric.of(model.predict(x[400:]), model.predict_proba(x[400:])), after).within(0.005)
    assert pruned.metric.after == pytest.approx(after)


def test_a_model_pruning_does_not_know_is_refused_by_name() -> None:
    x, y = make_classification(100, 4, random_state=0)
    with pytest.raises(UnsupportedExportError, match="SVC is none of them"):
        prune(SVC().fit(x, y), holdout_x=x, holdout_y=y, task="classification")
    with pytest.raises(InputError, match="max_metric_drop"):
        prune(SVC().fit(x, y), holdout_x=x, holdout_y=y, task="classification", max_metric_drop=-1)
