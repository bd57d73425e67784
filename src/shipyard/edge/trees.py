"""Read scikit-learn's tree models into the neutral `Ensemble` that the ONNX and C exports write.

`read_ensemble` handles scikit-learn's single trees, forests, GradientBoosting and
HistGradientBoosting (missing values and native categorical features included), and hands
XGBoost and LightGBM models to `shipyard.edge.boosters.read_booster`. Each reader mirrors how
the framework scores a row, so that `Ensemble.answers` and `Ensemble.labels` equal the model's
`predict_proba`/`predict` to the last bits:

- trees, forests and GradientBoosting round their inputs to float32 before comparing;
  HistGradientBoosting compares in float64;
- HistGradientBoosting sends a category it did not see in training where missing values go;
  its categorical splits are written so that any value outside a split's set goes that way
  (the set then names the categories going the other way, and the children are swapped);
- a categorical column whose categories are numbers is read in their values (the row carries
  the number itself); one whose categories are strings or other objects is read in codes, with
  the categories in `Ensemble.categories` for the export to map values to codes (anything else
  to NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shipyard.attribution.tree_models import FORESTS, histogram_columns
from shipyard.edge.ensemble import Ensemble, Floats, PostTransform, Tree
from shipyard.errors import UnsupportedExportError

__all__ = ["read_ensemble"]

_BOOSTING = frozenset({"GradientBoostingClassifier", "GradientBoostingRegressor"})
_HISTOGRAM = frozenset({"HistGradientBoostingClassifier", "HistGradientBoostingRegressor"})

_CODES = np.arange(256)
"""Every category code a HistGradientBoosting bitset can hold."""


def read_ensemble(model: Any, *, classes: Sequence[Any] | None = None) -> Ensemble | None:
    """The neutral form of a fitted tree model, or None when the model is not a tree model.

    Args:
        model: a fitted estimator (the last step of a pipeline, not the pipeline), or an
            `Ensemble` already (a pruned one), returned as it is.
        classes: a classifier's labels when the model does not keep them (a bare XGBoost or
            LightGBM Booster, as their flavors load it); the version's contract has them.

    Returns:
        The ensemble for scikit-learn's trees, forests, GradientBoosting and
        HistGradientBoosting; XGBoost's and LightGBM's models are read by
        `shipyard.edge.boosters.read_booster`; None for anything else.

    Raises:
        UnsupportedExportError: a tree model whose scoring the neutral form cannot say (several
            outputs, a fitted `init` estimator, a log-link loss).
    """
    if isinstance(model, Ensemble):
        return model
    module = type(model).__module__.split(".")[0]
    if module in ("xgboost", "lightgbm"):
        from shipyard.edge.boosters import read_booster

        return read_booster(model, classes=classes)
    if module != "sklearn" or not hasattr(model, "n_features_in_"):
        return None
    name = type(model).__name__
    if name in FORESTS:
        return _forest(model)
    if name in _BOOSTING:
        return _boosting(model)
    if name in _HISTOGRAM:
        return _histogram(model)
    return None


def _refuse(model: Any, why: str, instead: str) -> UnsupportedExportError:
    return UnsupportedExportError(
        f"{type(model).__name__} cannot be exported as a tree ensemble: {why}; {instead}"
    )


def _classes(model: Any) -> tuple[Any, ...]:
    return tuple(np.asarray(model.classes_).tolist())


def _classic_tree(tree: Any, value: Floats) -> Tree:
    """A scikit-learn `tree_` with the given leaf values (nodes, width)."""
    left = np.asarray(tree.children_left, dtype=np.int64)
    leaf = left < 0
    missing = getattr(tree, "missing_go_to_left", None)
    return Tree(
        feature=np.where(leaf, -1, np.asarray(tree.feature, dtype=np.int64)),
        threshold=np.asarray(tree.threshold, dtype=np.float64),
        left=np.where(leaf, -1, left),
        right=np.where(leaf, -1, np.asarray(tree.children_right, dtype=np.int64)),
        missing_left=np.zeros(len(left), bool) if missing is None else np.asarray(missing, dtype=bool),
        value=np.ascontiguousarray(value, dtype=np.float64),
    )


def _forest(model: Any) -> Ensemble:
    """A single tree or a forest: the average of the trees' leaf values (class fractions for a
    classifier, which scikit-learn stores already normalised)."""
    if int(getattr(model, "n_outputs_", 1)) != 1:
        raise _refuse(model, f"it predicts {model.n_outputs_} outputs", "fit one model per output")
    estimators = [model] if hasattr(model, "tree_") else list(model.estimators_)
    classifier = hasattr(model, "classes_")
    width = len(model.classes_) if classifier else 1
    trees = tuple(_classic_tree(e.tree_, e.tree_.value[:, 0, :width]) for e in estimators)
    return Ensemble(
        trees=trees,
        n_features=int(model.n_features_in_),
        n_outputs=width,
        targets=(None,) * len(trees),
        base=np.zeros(width),
        average=True,
        float32_inputs=True,
        classes=_classes(model) if classifier else None,
        model=type(model).__name__,
    )


def _boosting(model: Any) -> Ensemble:
    """GradientBoosting: a constant start (its `init_`) plus learning_rate times each tree."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    init = model.init_
    if not (isinstance(init, str) and init == "zero") and not isinstance(
        init, (DummyClassifier, DummyRegressor)
    ):
        raise _refuse(
            model,
            f"its init estimator {type(init).__name__} starts each row differently",
            "fit it with init=None (the prior) or init='zero'",
        )
    width = int(model.n_features_in_)
    start = np.asarray(model._raw_predict_init(np.zeros((1, width), np.float32)), np.float64)[0]
    # the exponential loss answers expit(2 * raw): doubling every term is exact
    scale = 2.0 if type(model._loss).__name__ == "ExponentialLoss" else 1.0
    stages = model.estimators_  # (iterations, trees per iteration)
    per_round = stages.shape[1]
    trees, targets = [], []
    for row in stages:
        for k, estimator in enumerate(row):
            tree = estimator.tree_
            value = tree.value.reshape(-1, 1) * model.learning_rate * scale
            trees.append(_classic_tree(tree, value))
            targets.append(k)
    classifier = hasattr(model, "classes_")
    return Ensemble(
        trees=tuple(trees),
        n_features=width,
        n_outputs=per_round,
        targets=tuple(targets),
        base=start * scale,
        post=_post(classifier, per_round),
        float32_inputs=True,
        positive_at_zero=classifier,  # its predict: raw >= 0
        classes=_classes(model) if classifier else None,
        model=type(model).__name__,
    )


def _post(classifier: bool, per_round: int) -> PostTransform:
    if not classifier:
        return "none"
    return "logistic" if per_round == 1 else "softmax"


def _histogram(model: Any) -> Ensemble:
    """HistGradientBoosting: its baseline plus each predictor's leaf value, comparing in
    float64, its categorical columns read through its own ordinal encoder."""
    classifier = hasattr(model, "classes_")
    if not classifier and type(model._loss.link).__name__ != "IdentityLink":
        raise _refuse(
            model,
            f"its loss '{model.loss}' answers a link of the trees' sum",
            "fit it with an identity-link loss (squared_error, absolute_error, quantile)",
        )
    columns = histogram_columns(model)
    values, categories = _category_values(model, columns)
    known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    per_round = int(model.n_trees_per_iteration_)
    trees, targets = [], []
    for row in model._predictors:
        for k, predictor in enumerate(row):
            trees.append(_histogram_tree(predictor, columns, values, known, f_idx_map))
            targets.append(k)
    return Ensemble(
        trees=tuple(trees),
        n_features=int(model.n_features_in_),
        n_outputs=per_round,
        targets=tuple(targets),
        base=np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1),
        post=_post(classifier, per_round),
        categories=categories,
        classes=_classes(model) if classifier else None,
        model=type(model).__name__,
    )


def _category_values(model: Any, columns: Any) -> tuple[dict[int, Floats], dict[int, tuple[Any, ...]]]:
    """Per internal categorical feature, what a row carries for each code (the category itself
    when it is a number, else the code); and per input column, the non-numeric categories.

    The model's ordinal encoder maps categories to codes (unseen ones and missing values to NaN);
    its last category is NaN when the training data had missing values, which is no category."""
    values: dict[int, Floats] = {}
    categories: dict[int, tuple[Any, ...]] = {}
    pre = getattr(model, "_preprocessor", None)
    if pre is None:
        return values, categories
    encoder = pre.named_transformers_["encoder"]
    start = pre.output_indices_["encoder"].start
    for offset, fitted in enumerate(encoder.categories_):
        found = np.asarray(fitted)
        if len(found) and found.dtype.kind in "fcO" and _is_nan(found[-1]):
            found = found[:-1]
        internal = start + offset
        if found.dtype.kind in "iuf":
            values[internal] = found.astype(np.float64)
        else:
            values[internal] = np.arange(len(found), dtype=np.float64)
            categories[int(columns[internal])] = tuple(found.tolist())
    return values, categories


def _is_nan(value: Any) -> bool:
    try:
        return bool(np.isnan(value))
    except TypeError:
        return False


def _histogram_tree(
    predictor: Any, columns: Any, values: dict[int, Floats], known: Any, f_idx_map: Any
) -> Tree:
    """One HGB predictor; `known[f_idx_map[feature]]` is an internal feature's known codes."""
    nodes = predictor.nodes
    leaf = nodes["is_leaf"].astype(bool)
    internal_feature = nodes["feature_idx"].astype(np.int64)
    left = np.where(leaf, -1, nodes["left"].astype(np.int64))
    right = np.where(leaf, -1, nodes["right"].astype(np.int64))
    missing_left = nodes["missing_go_to_left"].astype(bool)
    sets: dict[int, Floats] = {}
    for node in np.flatnonzero(~leaf & (nodes["is_categorical"] == 1)):
        feature = int(internal_feature[node])
        in_left = _bits(predictor.raw_left_cat_bitsets[nodes["bitset_idx"][node]])
        seen = _bits(known[f_idx_map[feature]])[: len(values[feature])]
        if missing_left[node]:
            # unseen categories go where missing values go (left): name the known ones going
            # right, and swap the children so that everything outside the set goes left
            chosen = seen & ~in_left[: len(seen)]
            left[node], right[node] = right[node], left[node]
            missing_left[node] = False
        else:
            chosen = in_left[: len(seen)]
        sets[int(node)] = np.sort(values[feature][chosen])
    value = np.asarray(nodes["value"], dtype=np.float64).reshape(-1, 1)
    return Tree(
        feature=np.where(leaf, -1, np.asarray(columns)[internal_feature]),
        threshold=nodes["num_threshold"].astype(np.float64),
        left=left,
        right=right,
        missing_left=missing_left,
        value=value,
        categories=sets,
    )


def _bits(bitset: Any) -> Any:
    """The 256 booleans of an HGB bitset (eight uint32 words)."""
    words = np.asarray(bitset, dtype=np.uint32)
    return ((words[_CODES // 32] >> (_CODES % 32).astype(np.uint32)) & 1).astype(bool)
