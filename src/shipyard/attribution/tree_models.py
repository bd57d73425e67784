"""Exact path-dependent TreeSHAP for scikit-learn's tree models, XGBoost and LightGBM.

`tree_explainer` picks the engine for a fitted model: scikit-learn's trees, forests and gradient
boosting (histogram-based included, with missing values and native categorical splits) are read
into model-neutral paths and explained by `shipyard.attribution.tree_paths`; XGBoost and
LightGBM explain themselves (`shipyard.attribution.tree_boosters`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.attribution.base import ColumnExplainer, Floats, Space
from shipyard.attribution.tree_boosters import booster_explainer
from shipyard.attribution.tree_paths import (
    MAX_TABLE_FEATURES,
    Binning,
    Bools,
    Ints,
    PathModel,
    TreeNodes,
    build_path_model,
)
from shipyard.errors import ExplanationError

__all__ = ["FORESTS", "PathExplainer", "histogram_columns", "tree_explainer"]

FORESTS = frozenset(
    {
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "ExtraTreeClassifier",
        "ExtraTreeRegressor",
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
    }
)
"""scikit-learn's trees and the forests that average them."""


@dataclass(frozen=True)
class PathExplainer:
    """A scikit-learn tree model explained by its paths (a `ColumnExplainer`).

    Attributes:
        paths: the model's paths, ready to explain rows.
        constant: (outputs,) what the model adds to its trees (a booster's initial score).
        matrix: turns what the estimator's predict takes into the trees' internal matrix.
        predict: the model's own output in `space`, (rows, outputs).
    """

    method: str
    space: Space
    outputs: tuple[str, ...]
    paths: PathModel
    constant: Floats
    matrix: Callable[[Any], Floats]
    predict: Callable[[Any], Floats]

    def base(self) -> Floats:
        """(outputs,): the model's expected output under the trees' covers."""
        return np.asarray(self.paths.base + self.constant, dtype=np.float64)

    def attribute(self, x: Any) -> Floats:
        """(rows, columns, outputs): each input column's share of each output."""
        return self.paths.attribute(self.matrix(x))

    def output(self, x: Any) -> Floats:
        """(rows, outputs): the estimator's own output in `space`."""
        if len(x) == 0:  # scikit-learn refuses to predict no rows
            return np.zeros((0, len(self.outputs)), dtype=np.float64)
        return self.predict(x)


def tree_explainer(
    model: Any, *, classes: tuple[Any, ...] | None, max_table_features: int = MAX_TABLE_FEATURES
) -> ColumnExplainer | None:
    """The exact TreeSHAP explainer of a fitted tree model, or None if it is not one handled.

    Args:
        model: the fitted estimator (the last step of a pipeline).
        classes: the version's classes (None for a regressor).
        max_table_features: paths with more unique features are computed row by row (exact;
            slower) instead of from a table of 2**L patterns.

    Returns:
        scikit-learn trees and forests ('probability' for classifiers, 'raw' for regressors),
        gradient boosting and histogram gradient boosting ('log_odds' / 'raw'), XGBoost and
        LightGBM (their own contributions); None for anything else.
    """
    module = type(model).__module__.split(".")[0]
    if module in ("xgboost", "lightgbm"):
        return booster_explainer(model, classes=classes)
    if module != "sklearn" or not hasattr(model, "n_features_in_"):
        return None
    name = type(model).__name__
    if name in FORESTS:
        return _forest(model, classes, max_table_features)
    if name in ("GradientBoostingClassifier", "GradientBoostingRegressor"):
        return _boosting(model, classes, max_table_features)
    if name in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"):
        return _histogram(model, classes, max_table_features)
    return None


def _outputs(classes: tuple[Any, ...] | None, model: Any) -> tuple[str, ...]:
    labels = classes if classes is not None else getattr(model, "classes_", None)
    if labels is None:
        return ("value",)
    return tuple(str(c) for c in labels)


def _sklearn_tree(tree: Any, value: Floats, binnings: list[Binning | None]) -> TreeNodes:
    """A scikit-learn `tree_` in neutral form (its thresholds are among `binnings`)."""
    left = np.asarray(tree.children_left, dtype=np.intp)
    feature = np.asarray(tree.feature, dtype=np.intp)
    missing = getattr(tree, "missing_go_to_left", None)
    return TreeNodes(
        left=left,
        right=np.asarray(tree.children_right, dtype=np.intp),
        feature=feature,
        cut=_cuts(left >= 0, feature, np.asarray(tree.threshold, dtype=np.float64), binnings),
        # without missing_go_to_left (older scikit-learn) a tree never meets missing values
        missing_left=np.zeros(len(left), bool) if missing is None else missing.astype(bool),
        categories={},
        cover=np.asarray(tree.weighted_n_node_samples, dtype=np.float64),
        value=value,
    )


def _cuts(split: Bools, feature: Ints, threshold: Floats, binnings: list[Binning | None]) -> Ints:
    """Per numeric split, its threshold's index among its column's (bins up to it go left:
    the value is <= the threshold); -1 elsewhere."""
    cut = np.full(len(feature), -1, dtype=np.intp)
    for column in np.unique(feature[split]):
        binning = binnings[int(column)]
        if binning is None or binning.thresholds is None:
            raise ExplanationError(
                f"column {int(column)} is split by a threshold but was read as categorical; "
                "the tree model cannot be explained by its paths"
            )
        at = split & (feature == column)
        cut[at] = np.searchsorted(binning.thresholds, threshold[at], side="left")
    return cut


def _thresholds(n_columns: int, pairs: list[tuple[Ints, Floats]]) -> list[Binning | None]:
    """Per column, the sorted thresholds every tree splits it at (None: never split on)."""
    found: list[list[Floats]] = [[] for _ in range(n_columns)]
    for feature, threshold in pairs:
        for column in np.unique(feature[feature >= 0]):
            found[int(column)].append(threshold[feature == column])
    return [Binning(np.unique(np.concatenate(f))) if f else None for f in found]


def _as_matrix(model: Any, x: Any, dtype: Any, names: Any) -> Any:
    """The estimator's input as a 2-D array of `dtype` (a frame must have its fitted columns
    `names`, in order); None when the fast way does not apply (then the model's own validation
    is used)."""
    if hasattr(x, "columns"):
        if names is None or not x.columns.equals(names):
            return None
        try:
            array = x.to_numpy(dtype=dtype)
        except (TypeError, ValueError):
            return None
    else:
        array = np.asarray(x, dtype=dtype)
    if array.ndim != 2 or array.shape[1] != int(model.n_features_in_):
        return None
    return array


def _names(model: Any) -> Any:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return None
    import pandas as pd

    return pd.Index(list(names))


def _sklearn_frame(model: Any) -> Callable[[Any], Floats]:
    """What scikit-learn's trees compare: the input as float32 (then exactly as float64)."""

    from sklearn.utils.validation import validate_data

    names = _names(model)

    def matrix(x: Any) -> Floats:
        array = _as_matrix(model, x, np.float32, names)
        if array is None:
            array = validate_data(model, x, reset=False, dtype=np.float32, ensure_all_finite=False)
        return np.asarray(array, dtype=np.float64)

    return matrix


def _forest(model: Any, classes: tuple[Any, ...] | None, limit: int) -> ColumnExplainer | None:
    estimators = [model] if hasattr(model, "tree_") else list(model.estimators_)
    if int(getattr(model, "n_outputs_", 1)) != 1:
        return None
    trees = [e.tree_ for e in estimators]
    binnings = _thresholds(model.n_features_in_, [(t.feature, t.threshold) for t in trees])
    classifier = hasattr(model, "classes_")
    scale = 1.0 / len(trees)
    nodes = [_sklearn_tree(t, t.value.reshape(t.node_count, -1) * scale, binnings) for t in trees]
    paths = build_path_model(
        nodes, tuple(binnings), _identity(model), model.n_features_in_, max_table_features=limit
    )
    if classifier:
        predict: Callable[[Any], Floats] = lambda x: np.asarray(model.predict_proba(x), float)  # noqa: E731
    else:
        predict = lambda x: np.asarray(model.predict(x), float).reshape(-1, 1)  # noqa: E731
    return PathExplainer(
        "tree_shap",
        "probability" if classifier else "raw",
        _outputs(classes, model) if classifier else ("value",),
        paths,
        np.zeros(paths.n_outputs),
        _sklearn_frame(model),
        predict,
    )


def _identity(model: Any) -> Ints:
    return np.arange(int(model.n_features_in_), dtype=np.intp)


def _boosting(model: Any, classes: tuple[Any, ...] | None, limit: int) -> ColumnExplainer | None:
    from sklearn.dummy import DummyClassifier, DummyRegressor

    init = model.init_
    if not (isinstance(init, str) and init == "zero") and not isinstance(
        init, (DummyClassifier, DummyRegressor)
    ):
        return None  # a fitted init estimator's start varies per row: not a tree's value
    stages = model.estimators_  # (iterations, outputs)
    n_out = stages.shape[1]
    trees = [(k, e.tree_) for row in stages for k, e in enumerate(row)]
    binnings = _thresholds(model.n_features_in_, [(t.feature, t.threshold) for _, t in trees])
    nodes = []
    for k, tree in trees:
        value = np.zeros((tree.node_count, n_out))
        value[:, k] = tree.value.reshape(-1) * model.learning_rate
        nodes.append(_sklearn_tree(tree, value, binnings))
    paths = build_path_model(
        nodes, tuple(binnings), _identity(model), model.n_features_in_, max_table_features=limit
    )
    start = model._raw_predict_init(np.zeros((1, model.n_features_in_), dtype=np.float32))
    classifier = hasattr(model, "classes_")
    if classifier:
        labels = _outputs(classes, model)
        names = (labels[1],) if n_out == 1 else labels
        predict = _columns_of(model.decision_function)
        space: Space = "log_odds"
    else:
        names, space = ("value",), "raw"
        predict = _columns_of(model.predict)
    constant = np.asarray(start, dtype=np.float64).reshape(-1)
    return PathExplainer("tree_shap", space, names, paths, constant, _sklearn_frame(model), predict)


def _columns_of(method: Callable[[Any], Any]) -> Callable[[Any], Floats]:
    def predict(x: Any) -> Floats:
        raw = np.asarray(method(x), dtype=np.float64)
        return raw.reshape(len(raw), -1)

    return predict


def _histogram(model: Any, classes: tuple[Any, ...] | None, limit: int) -> ColumnExplainer | None:
    classifier = hasattr(model, "classes_")
    if not classifier and type(model._loss.link).__name__ != "IdentityLink":
        return None  # its prediction is a link of the raw sum: the sum is not its output
    predictors = model._predictors  # (iterations, outputs)
    n_out = int(model.n_trees_per_iteration_)
    width = int(model.n_features_in_)
    known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    flat = [(k, p) for row in predictors for k, p in enumerate(row)]
    categorical = np.zeros(width, dtype=bool)
    for _, predictor in flat:
        nodes = predictor.nodes
        inner = nodes[nodes["is_leaf"] == 0]
        categorical[inner["feature_idx"][inner["is_categorical"] == 1]] = True
    pairs = []
    for _, predictor in flat:
        inner = predictor.nodes[(predictor.nodes["is_leaf"] == 0) & (predictor.nodes["is_categorical"] == 0)]
        pairs.append((inner["feature_idx"].astype(np.intp), inner["num_threshold"]))
    binnings = _thresholds(width, pairs)
    for column in np.flatnonzero(categorical):
        binnings[column] = Binning(None)
    trees = [
        _histogram_tree(p, k, n_out, binnings=binnings, known=known, f_idx_map=f_idx_map) for k, p in flat
    ]
    columns = histogram_columns(model)
    paths = build_path_model(trees, tuple(binnings), columns, width, max_table_features=limit)
    constant = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
    if classifier:
        labels = _outputs(classes, model)
        names = (labels[1],) if n_out == 1 else labels
        space: Space = "log_odds"
    else:
        names, space = ("value",), "raw"
    return PathExplainer(
        "tree_shap",
        space,
        names,
        paths,
        constant,
        _histogram_frame(model),
        _columns_of(model._raw_predict),
    )


def _histogram_tree(
    predictor: Any,
    k: int,
    n_out: int,
    *,
    binnings: list[Binning | None],
    known: Any,
    f_idx_map: Any,
) -> TreeNodes:
    """One HGB predictor in neutral form (NaN, negative and unknown categories go where its
    missing values go, as `_predict_one_from_raw_data` sends them)."""
    nodes = predictor.nodes
    leaf = nodes["is_leaf"].astype(bool)
    left = np.where(leaf, -1, nodes["left"].astype(np.intp))
    feature = nodes["feature_idx"].astype(np.intp)
    value = np.zeros((len(nodes), n_out))
    value[:, k] = nodes["value"]
    categories: dict[int, Bools] = {}
    raw_sets = predictor.raw_left_cat_bitsets
    codes = np.arange(256)
    numeric = ~leaf & (nodes["is_categorical"] == 0)
    for node in np.flatnonzero(~leaf & (nodes["is_categorical"] == 1)):
        missing = bool(nodes["missing_go_to_left"][node])
        in_left = (raw_sets[nodes["bitset_idx"][node], codes // 32] >> (codes % 32)) & 1
        known_set = (known[f_idx_map[feature[node]], codes // 32] >> (codes % 32)) & 1
        to_left = np.where(in_left == 1, True, np.where(known_set == 1, False, missing))
        categories[int(node)] = np.append(to_left, missing)  # the last bin: missing
    return TreeNodes(
        left=left,
        right=np.where(leaf, -1, nodes["right"].astype(np.intp)),
        feature=feature,
        cut=_cuts(numeric, feature, nodes["num_threshold"].astype(np.float64), binnings),
        missing_left=nodes["missing_go_to_left"].astype(bool),
        categories=categories,
        cover=nodes["count"].astype(np.float64),
        value=value,
    )


def histogram_columns(model: Any) -> Ints:
    """The input column of each internal column (the categorical-from-dtype preprocessor puts
    the categorical columns first)."""
    width = int(model.n_features_in_)
    pre = getattr(model, "_preprocessor", None)
    if pre is None:
        return np.arange(width, dtype=np.intp)
    columns = np.zeros(width, dtype=np.intp)
    for name, _, selected in pre.transformers_:
        if name not in pre.output_indices_:
            continue
        chosen = np.arange(width)[np.asarray(selected)] if len(selected) else np.zeros(0, int)
        part = pre.output_indices_[name]
        columns[part.start : part.stop] = chosen
    return columns


def _histogram_frame(model: Any) -> Callable[[Any], Floats]:
    """The internal matrix HGB predicts from (its own preprocessing, float64)."""
    fast = getattr(model, "_preprocessor", None) is None
    names = _names(model)

    def matrix(x: Any) -> Floats:
        array = _as_matrix(model, x, np.float64, names) if fast else None
        if array is None:
            array = model._preprocess_X(x, reset=False)
        return np.asarray(array, dtype=np.float64)

    return matrix
