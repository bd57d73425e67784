"""XGBoost and LightGBM models read into the neutral `Ensemble`, categorical splits and missing values
included, so that the ONNX and C writers never look at either framework.

XGBoost is read from its JSON model (`Booster.save_raw("json")`): float32 thresholds and leaves,
`x < threshold` on inputs rounded to float32, a missing value to each node's default child, and a
categorical split sending the categories it lists to its right child (the `Ensemble`'s nodes send
their set left, so such a node's children are swapped). XGBoost sums its leaves in float32: the
`Ensemble`, in float64, differs from it by about 1e-7 of an answer.

LightGBM is read from `Booster.dump_model()`: float64 thresholds and leaves, `x <= threshold`,
every |x| <= 1e-35 read as 0.0, and its three missing-value rules per node (see `_numeric_split`);
a categorical split sends the codes it lists left and everything else right, a missing (NaN) or
negative code included (NaN measured on x86-64, where LightGBM casts it to a negative int). An
infinite threshold is the 1e300 LightGBM writes in its model text, which a registered version is
loaded from.

A categorical column holds category codes: integers (the framework's own codes, or positions in
`Ensemble.categories`), NaN for a missing or unseen category; both frameworks truncate a
fractional code, the `Ensemble` does not.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.edge.ensemble import Ensemble, PostTransform, Tree
from shipyard.errors import UnsupportedExportError
from shipyard.flavors.base import module_of, plain_labels
from shipyard.flavors.xgboost import fitted_categories

__all__ = ["read_booster"]

_XGB_LOGISTIC = {"binary:logistic"}
_XGB_SOFTMAX = {"multi:softprob", "multi:softmax"}
_XGB_IDENTITY = {
    "reg:squarederror",
    "reg:absoluteerror",
    "reg:pseudohubererror",
    "reg:squaredlogerror",
    "reg:quantileerror",
}
_LGB_IDENTITY = {"regression", "regression_l1", "huber", "fair", "quantile", "mape"}
_ZERO = float(np.float32(1e-35))
"""LightGBM's `kZeroThreshold` as it compares it: it reads any |x| <= this as 0.0."""
_BELOW_ZERO = float(np.nextafter(-_ZERO, -np.inf))
"""The largest float64 below -`_ZERO`: x <= this when x < -`_ZERO`."""


def read_booster(model: object, *, classes: Sequence[Any] | None = None) -> Ensemble | None:
    """The `Ensemble` of a fitted XGBoost or LightGBM model; None for any other model.

    Args:
        model: an `XGBClassifier`/`XGBRegressor` (or their random-forest variants), an
            `xgboost.Booster`, an `LGBMClassifier`/`LGBMRegressor`, or a `lightgbm.Booster`.
        classes: a classifier's labels in the order of its probabilities; defaults to the
            scikit-learn wrapper's `classes_`, and for a bare Booster to the class indices 0..k-1.

    Raises:
        UnsupportedExportError: the model's objective, booster or trees have no exact neutral
            form (the message names what and what would work).
    """
    framework = module_of(model)
    if framework == "xgboost" and hasattr(model, "get_booster"):
        fitted = getattr(model, "__sklearn_is_fitted__", lambda: True)()
        return _read_xgboost(model, classes) if fitted else None
    if framework == "xgboost" and type(model).__name__ == "Booster":
        return _read_xgboost(model, classes)
    if framework == "lightgbm" and (hasattr(model, "booster_") or type(model).__name__ == "Booster"):
        return _read_lightgbm(model, classes)
    return None


def _refuse(model: object, what: str, works: str) -> UnsupportedExportError:
    return UnsupportedExportError(f"{type(model).__name__}: {what}; {works}")


def _labels(model: object, classes: Sequence[Any] | None, n_classes: int) -> tuple[Any, ...]:
    found = classes if classes is not None else getattr(model, "classes_", None)
    labels = tuple(plain_labels(found)) if found is not None else tuple(range(n_classes))
    if len(labels) != n_classes:
        raise UnsupportedExportError(
            f"{type(model).__name__} has {n_classes} classes but {len(labels)} labels were given "
            f"({list(labels)!r}); pass one label per class, in the order of its probabilities"
        )
    return labels


# XGBoost


def _read_xgboost(model: Any, classes: Sequence[Any] | None) -> Ensemble:
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    missing = getattr(model, "missing", math.nan)
    if missing is not None and not (isinstance(missing, float) and math.isnan(missing)):
        raise _refuse(model, f"missing={missing!r} marks a value as missing", "refit with missing=np.nan")
    learner = json.loads(bytes(booster.save_raw("json")))["learner"]
    params = learner["learner_model_param"]
    gradient_booster = learner["gradient_booster"]
    kind = gradient_booster["name"]
    if kind not in ("gbtree", "dart"):
        raise _refuse(model, f"booster {kind!r} has no trees", "export a booster='gbtree' or 'dart' model")
    forest = gradient_booster["gbtree"]["model"] if kind == "dart" else gradient_booster["model"]
    weights = gradient_booster.get("weight_drop") if kind == "dart" else None
    if int(params.get("num_target", 1)) > 1:
        raise _refuse(model, "a multi-target model (num_target > 1)", "export one model per target")
    post, base, labels = _xgboost_output(model, learner, classes)
    n_trees = len(forest["trees"])
    if hasattr(model, "get_booster") and "best_iteration" in booster.attributes():
        # the scikit-learn wrapper predicts with the rounds up to its best one, a Booster with all
        n_trees = int(forest["iteration_indptr"][int(booster.attributes()["best_iteration"]) + 1])
    trees = tuple(
        _xgboost_tree(tree, 1.0 if weights is None else weights[i], model)
        for i, tree in enumerate(forest["trees"][:n_trees])
    )
    return Ensemble(
        trees=trees,
        n_features=int(params["num_feature"]),
        n_outputs=len(base),
        targets=tuple(int(group) for group in forest["tree_info"][:n_trees]),
        base=base,
        post=post,
        strict=True,
        float32_inputs=True,
        float32_sums=True,
        categories=fitted_categories(booster),
        classes=labels,
        model=type(model).__name__,
    )


def _xgboost_output(
    model: object, learner: dict[str, Any], classes: Sequence[Any] | None
) -> tuple[PostTransform, npt.NDArray[np.float64], tuple[Any, ...] | None]:
    """The objective's transform, the margin the trees start from (`base_score` is a probability
    for binary:logistic, a margin otherwise), and a classifier's labels."""
    objective = learner["objective"]["name"]
    params = learner["learner_model_param"]
    base = np.array([float(np.float32(v)) for v in params["base_score"].strip("[]").split(",")])
    if objective in _XGB_LOGISTIC:
        probability = base.astype(np.float32)  # XGBoost turns it into a margin in float32
        return (
            "logistic",
            (-np.log(np.float32(1) / probability - np.float32(1))).astype(np.float64),
            _labels(model, classes, 2),
        )
    if objective in _XGB_SOFTMAX:
        n_classes = int(params["num_class"])
        return "softmax", np.broadcast_to(base, (n_classes,)).copy(), _labels(model, classes, n_classes)
    if objective in _XGB_IDENTITY:
        return "none", base, None
    raise _refuse(
        model,
        f"objective {objective!r} is not exported",
        f"refit with one of {sorted(_XGB_LOGISTIC | _XGB_SOFTMAX | _XGB_IDENTITY)}",
    )


def _xgboost_tree(tree: dict[str, Any], weight: float, model: object) -> Tree:
    if int(tree["tree_param"].get("size_leaf_vector", 1)) > 1:
        raise _refuse(
            model, "vector-leaf trees (multi_strategy='multi_output_tree')", "use one_output_per_tree"
        )
    left = np.asarray(tree["left_children"], dtype=np.int64)
    right = np.asarray(tree["right_children"], dtype=np.int64)
    conditions = np.asarray(tree["split_conditions"], dtype=np.float32)
    leaf = left < 0
    missing_left = np.asarray(tree["default_left"], dtype=bool)
    value = np.where(leaf, conditions * np.float32(weight), 0).astype(np.float64)
    categories: dict[int, Any] = {}
    segments, sizes, codes = tree["categories_segments"], tree["categories_sizes"], tree["categories"]
    for node, start, size in zip(tree["categories_nodes"], segments, sizes, strict=True):
        # XGBoost sends the listed categories right: swap so that they go left, as the Ensemble's do
        categories[node] = np.array(sorted(codes[start : start + size]), dtype=np.float64)
        left[node], right[node] = right[node], left[node]
        missing_left[node] = not missing_left[node]
    return Tree(
        feature=np.where(leaf, -1, np.asarray(tree["split_indices"], dtype=np.int64)),
        threshold=np.where(leaf, 0.0, conditions.astype(np.float64)),
        left=left,
        right=right,
        missing_left=missing_left,
        value=value.reshape(-1, 1),
        categories=categories,
    )


# LightGBM


def _read_lightgbm(model: Any, classes: Sequence[Any] | None) -> Ensemble:
    booster = model.booster_ if hasattr(model, "booster_") else model
    dump = booster.dump_model()
    name, *options = dump["objective"].split()
    settings = dict(option.split(":", 1) for option in options if ":" in option)
    per_round = int(dump["num_tree_per_iteration"])
    scale = 1.0
    post: PostTransform
    if name == "binary":
        post, labels, scale = "logistic", _labels(model, classes, 2), float(settings.get("sigmoid", 1.0))
    elif name == "multiclass":
        post, labels = "softmax", _labels(model, classes, int(dump["num_class"]))
    elif name in _LGB_IDENTITY and "sqrt" not in options:
        post, labels = "none", None
    else:
        raise _refuse(
            model,
            f"objective {dump['objective']!r} is not exported",
            f"refit with binary, multiclass, or one of {', '.join(sorted(_LGB_IDENTITY))} (without reg_sqrt)",
        )
    trees = tuple(_lightgbm_tree(info["tree_structure"], scale, model) for info in dump["tree_info"])
    return Ensemble(
        trees=trees,
        n_features=int(dump["max_feature_idx"]) + 1,
        n_outputs=per_round,
        targets=tuple(i % per_round for i in range(len(trees))),
        base=np.zeros(per_round),
        average=bool(dump.get("average_output", False)),
        post=post,
        categories=_lightgbm_categories(booster, dump, model),
        classes=labels,
        model=type(model).__name__,
    )


class _Nodes:
    """A tree being built node by node."""

    def __init__(self) -> None:
        self.feature: list[int] = []
        self.threshold: list[float] = []
        self.left: list[int] = []
        self.right: list[int] = []
        self.missing_left: list[bool] = []
        self.value: list[float] = []
        self.categories: dict[int, Any] = {}

    def add(self) -> int:
        """A new node (a leaf until `split`), its number."""
        self.feature.append(-1)
        self.threshold.append(0.0)
        self.left.append(-1)
        self.right.append(-1)
        self.missing_left.append(False)
        self.value.append(0.0)
        return len(self.feature) - 1

    def split(self, node: int, feature: int, threshold: float, missing_left: bool) -> tuple[int, int]:
        """Make `node` a split; its two new children."""
        left, right = self.add(), self.add()
        self.feature[node], self.threshold[node], self.missing_left[node] = feature, threshold, missing_left
        self.left[node], self.right[node] = left, right
        return left, right

    def tree(self) -> Tree:
        """The finished tree."""
        return Tree(
            feature=np.array(self.feature, dtype=np.int64),
            threshold=np.array(self.threshold, dtype=np.float64),
            left=np.array(self.left, dtype=np.int64),
            right=np.array(self.right, dtype=np.int64),
            missing_left=np.array(self.missing_left, dtype=bool),
            value=np.array(self.value, dtype=np.float64).reshape(-1, 1),
            categories=self.categories,
        )


def _lightgbm_tree(structure: dict[str, Any], scale: float, model: object) -> Tree:
    nodes = _Nodes()
    pending = [(structure, nodes.add())]
    while pending:
        item, node = pending.pop()
        if "split_index" not in item:
            if "leaf_coeff" in item:
                raise _refuse(model, "linear trees (linear_tree=True)", "refit with linear_tree=False")
            nodes.value[node] = float(item["leaf_value"]) * scale
            continue
        feature = int(item["split_feature"])
        if item["decision_type"] == "==":
            # codes listed go left; anything else, a missing or negative code included, goes right
            left, right = nodes.split(node, feature, 0.0, missing_left=False)
            members = sorted(int(code) for code in str(item["threshold"]).split("||"))
            nodes.categories[node] = np.array(members, dtype=np.float64)
            pending += [(item["left_child"], left), (item["right_child"], right)]
        else:
            pending += _numeric_split(nodes, node, feature, item)
    return nodes.tree()


def _numeric_split(nodes: _Nodes, node: int, feature: int, item: dict[str, Any]) -> list[tuple[Any, int]]:
    """Write LightGBM's numeric split at `node`; the children still to build, with their nodes.

    LightGBM compares `x <= threshold`, except: with missing type `NaN`, NaN goes to the default
    child; with `None`, NaN is read as 0.0; with `Zero`, NaN and every |x| <= 1e-35 (float32) go to
    the default child. The last one is written as the few numeric splits over the intervals of the
    line that it amounts to, a child's subtree copied when it owns two intervals.
    """
    threshold = float(item["threshold"])
    if -_ZERO <= threshold < _ZERO:
        # LightGBM reads every |x| <= 1e-35 as 0.0 before the trees see it
        threshold = _ZERO if threshold >= 0.0 else _BELOW_ZERO
    missing = item["missing_type"]
    children = {True: item["left_child"], False: item["right_child"]}
    if missing != "Zero":
        missing_left = bool(item["default_left"]) if missing == "NaN" else threshold >= 0.0
        left, right = nodes.split(node, feature, threshold, missing_left)
        return [(children[True], left), (children[False], right)]
    cuts = sorted({_BELOW_ZERO, _ZERO, threshold})
    # the child (True: left) of each interval (-inf, cuts[0]], (cuts[0], cuts[1]], ..., (cuts[-1], inf)
    sides = [
        bool(item["default_left"]) if low >= _BELOW_ZERO and high <= _ZERO else high <= threshold
        for low, high in zip([-math.inf, *cuts], [*cuts, math.inf], strict=True)
    ]
    zero = next(i for i, high in enumerate([*cuts, math.inf]) if high >= 0.0)
    kept = [i for i in range(1, len(sides)) if sides[i] != sides[i - 1]]
    return _intervals(
        nodes,
        node,
        feature=feature,
        cuts=[cuts[i - 1] for i in kept],
        sides=[sides[0]] + [sides[i] for i in kept],
        zero=sum(1 for i in kept if i <= zero),
        children=children,
    )


def _intervals(
    nodes: _Nodes,
    node: int,
    *,
    feature: int,
    cuts: list[float],
    sides: list[bool],
    zero: int,
    children: dict[bool, Any],
) -> list[tuple[Any, int]]:
    """Write at `node` the splits sending x in the i-th interval between `cuts` to child `sides[i]`,
    and NaN to the interval `zero`'s; the children still to build, with their nodes."""
    if not cuts:
        return [(children[sides[0]], node)]
    middle = len(cuts) // 2
    left, right = nodes.split(node, feature, cuts[middle], missing_left=zero <= middle)
    below = _intervals(
        nodes,
        left,
        feature=feature,
        cuts=cuts[:middle],
        sides=sides[: middle + 1],
        zero=zero,
        children=children,
    )
    above = _intervals(
        nodes,
        right,
        feature=feature,
        cuts=cuts[middle + 1 :],
        sides=sides[middle + 1 :],
        zero=zero - middle - 1,
        children=children,
    )
    return below + above


def _lightgbm_categories(booster: Any, dump: dict[str, Any], model: object) -> dict[int, tuple[Any, ...]]:
    """Per categorical input column fitted on a pandas categorical, its categories in code order."""
    values = dump.get("pandas_categorical") or []
    if not values:
        return {}
    columns = _lightgbm_categorical_columns(booster)
    if len(columns) != len(values):
        raise _refuse(
            model,
            f"{len(values)} pandas categorical columns but {len(columns)} categorical features "
            f"({columns}), so which column holds which categories is unknown",
            "fit on unordered pandas categoricals with categorical_feature='auto'",
        )
    return {column: tuple(plain_labels(found)) for column, found in zip(columns, values, strict=True)}


def _lightgbm_categorical_columns(booster: Any) -> list[int]:
    for line in booster.model_to_string().splitlines():
        if line.startswith("[categorical_feature:"):
            listed = line.removeprefix("[categorical_feature:").rstrip("]").strip()
            return sorted(int(column) for column in listed.split(",") if column.strip())
    return []
