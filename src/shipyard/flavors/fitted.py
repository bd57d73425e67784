"""What a scikit-learn model read from a file holds is checked where skops's type check cannot.

Trees: scikit-learn walks a tree's node array in compiled code without bounds checks, so a crafted
file whose nodes point past the array, back up the tree or at a feature the input lacks makes
prediction read memory it does not own (a crash, or garbage) or loop for ever. skops leaves
`Tree` and `TreePredictor` out of its defaults for that reason; Shipyard trusts them (every
tree model holds them) and checks each one instead: every child lies after its parent and
inside the array, every split's feature inside the estimator's input, every categorical split
inside its bitsets.

Text vectorizers: `CountVectorizer`, `TfidfVectorizer` and `HashingVectorizer` built with
`input='filename'` or `input='file'` open or read whatever their input names, so a model file
could make each prediction read a file of the caller's choosing; only `input='content'` loads.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from shipyard.errors import UntrustedArtifactError

__all__ = ["check_fitted"]

_LEAF = -1  # sklearn.tree._tree.TREE_LEAF


def check_fitted(model: object) -> None:
    """Check every fitted tree and text vectorizer reachable from `model`.

    Raises:
        UntrustedArtifactError: a tree's nodes point outside their arrays or the input, or a
            vectorizer reads files.
    """
    tree, predictor, vectorizer = (
        _loaded_class("sklearn.tree._tree", "Tree"),
        _loaded_class("sklearn.ensemble._hist_gradient_boosting.predictor", "TreePredictor"),
        _loaded_class("sklearn.feature_extraction.text", "_VectorizerMixin"),
    )
    seen: set[int] = set()
    stack: list[tuple[object, str, object]] = [(model, type(model).__name__, None)]
    while stack:
        item, where, owner = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, tree):
            _check_tree(item, where, _n_features(owner))
        elif isinstance(item, predictor):
            _check_predictor(item, where, owner)
        elif isinstance(item, vectorizer) and getattr(item, "input", "content") != "content":
            raise UntrustedArtifactError(
                f"the text vectorizer at {where} has input={getattr(item, 'input', None)!r}: it would "
                "open or read whatever each request names instead of taking the text itself; only "
                "input='content' loads"
            )
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{where}[{i}]", owner) for i, v in enumerate(item))
        elif isinstance(item, dict):
            stack.extend((v, f"{where}[{k!r}]", owner) for k, v in item.items())
        elif isinstance(item, np.ndarray) and item.dtype == object:
            stack.extend((v, f"{where}[{i}]", owner) for i, v in enumerate(item.ravel()))
        if type(item).__module__.startswith("sklearn.") and hasattr(item, "__dict__"):
            stack.extend((v, f"{where}.{k}", item) for k, v in vars(item).items())


def _loaded_class(module: str, name: str) -> type | tuple[()]:
    """The class `module.name` if its module is imported, else () (isinstance of nothing).

    A model holds an instance of a class only once its module was imported, so the check needs
    no import of its own: importing scikit-learn's tree and text modules for a model that has
    neither would add to every server's start.
    """
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else ()


def _n_features(owner: object) -> int | None:
    n = getattr(owner, "n_features_in_", None)
    return int(n) if isinstance(n, int | np.integer) else None


def _refuse(where: str, problem: str) -> UntrustedArtifactError:
    return UntrustedArtifactError(
        f"the fitted tree at {where} is malformed: {problem}; a file whose trees point outside "
        "their arrays was not written by scikit-learn, and predicting with it would read memory "
        "out of bounds"
    )


def _check_children(where: str, left: Any, right: Any, internal: Any) -> None:
    n = len(internal)
    if n == 0:
        raise _refuse(where, "it has no nodes")
    index = np.arange(n)[internal]
    left, right = np.asarray(left)[internal], np.asarray(right)[internal]
    bad = (left <= index) | (left >= n) | (right <= index) | (right >= n)
    if bad.any():
        node = int(index[bad.argmax()])
        raise _refuse(where, f"node {node} has children outside nodes {node + 1}..{n - 1}")


def _check_features(where: str, feature: Any, limit: int | None) -> None:
    if limit is None:
        raise _refuse(where, "its estimator does not say how many features it takes (n_features_in_)")
    bad = (feature < 0) | (feature >= limit)
    if bad.any():
        raise _refuse(where, f"a split uses feature {int(feature[bad.argmax()])} of {limit}")


def _check_tree(tree: Any, where: str, n_features: int | None) -> None:
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    if not len(left) == len(right) == len(feature) == tree.node_count:
        raise _refuse(where, "its node arrays differ in length")
    internal = left != _LEAF
    _check_children(where, left, right, internal)
    limit = min(int(tree.n_features), n_features) if n_features is not None else None
    _check_features(where, feature[internal], limit)


def _check_predictor(predictor: Any, where: str, owner: object) -> None:
    nodes = predictor.nodes
    internal = nodes["is_leaf"] == 0
    _check_children(where, nodes["left"], nodes["right"], internal)
    n_features = _n_features(owner)
    _check_features(where, nodes["feature_idx"][internal].astype(np.int64), n_features)
    categorical = internal & (nodes["is_categorical"] != 0)
    if not categorical.any():
        return
    if len(nodes["bitset_idx"][categorical]) and nodes["bitset_idx"][categorical].max() >= len(
        predictor.raw_left_cat_bitsets
    ):
        raise _refuse(where, "a categorical split points past its bitsets")
    mask = getattr(getattr(owner, "_bin_mapper", None), "is_categorical_", None)
    features = nodes["feature_idx"][categorical].astype(np.int64)
    if mask is None or len(mask) != n_features or not np.asarray(mask, dtype=bool)[features].all():
        raise _refuse(where, "a categorical split uses a feature that is not categorical")
