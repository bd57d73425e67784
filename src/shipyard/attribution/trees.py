"""Path-dependent Shapley values of scikit-learn trees, exactly, over every coalition.

The path-dependent value of a coalition S for a row x (TreeSHAP's, Lundberg et al. 2020) is the
tree's output when the features in S follow x down the tree and every other split sends the row
to both children, weighted by the training samples that went each way. With every feature in S
that is the tree's prediction for x; with none, its mean training prediction. A forest's value is
the mean (or, for boosting, the sum) of its trees' values.

This module computes the value of all 2**d coalitions at once (one weight per coalition per node)
and turns them into Shapley values; it is exact, and it is the oracle for any faster TreeSHAP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.attribution.shapley import MAX_EXACT_FEATURES, from_coalition_values
from shipyard.errors import InputError

__all__ = ["coalition_values", "path_dependent_shapley", "tree_shap"]


def coalition_values(tree: Any, row: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The path-dependent value of every coalition of the row's features for one fitted tree.

    Args:
        tree: a fitted scikit-learn tree structure (`estimator.tree_`).
        row: the row's features, in the tree's column order (NaN for missing).

    Returns:
        shape (2**d, outputs), d = len(row); outputs are the tree's node values flattened
        (a classifier's class fractions, a regressor's value).
    """
    d = len(row)
    masks = np.arange(1 << d)
    value = tree.value.reshape(tree.node_count, -1)
    cover = tree.weighted_n_node_samples
    left, right = tree.children_left, tree.children_right
    missing_left = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, dtype=bool))
    total = np.zeros((len(masks), value.shape[1]), dtype=np.float64)
    stack: list[tuple[int, npt.NDArray[np.float64]]] = [(0, np.ones(len(masks), dtype=np.float64))]
    while stack:
        node, weight = stack.pop()
        if left[node] == -1:
            total += weight[:, None] * value[node]
            continue
        feature = int(tree.feature[node])
        x = row[feature]
        goes_left = bool(missing_left[node]) if np.isnan(x) else bool(x <= tree.threshold[node])
        follows = ((masks >> feature) & 1).astype(bool)
        share_left = cover[left[node]] / cover[node]
        to_left = np.where(follows, 1.0 if goes_left else 0.0, share_left)
        stack.append((int(left[node]), weight * to_left))
        stack.append((int(right[node]), weight * (1.0 - to_left)))
    return total


def path_dependent_shapley(
    trees: Sequence[Any], row: npt.NDArray[np.float64], *, combine: str = "mean"
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Exact path-dependent Shapley values of a row for a tree or an ensemble of trees.

    Args:
        trees: the fitted tree structures (`estimator.tree_` of each tree).
        row: the row's features in the model's column order.
        combine: "mean" (a random forest, extra trees) or "sum" (boosted trees' raw scores).

    Returns:
        (phi, base): phi has shape (features, outputs), base shape (outputs,); sum(phi) + base is
        the ensemble's combined output for the row.

    Raises:
        InputError: more than `MAX_EXACT_FEATURES` features, or an unknown `combine`.
    """
    if len(row) > MAX_EXACT_FEATURES:
        raise InputError(
            f"exact coalition values are computed for at most {MAX_EXACT_FEATURES} features; "
            f"this row has {len(row)}"
        )
    if combine not in ("mean", "sum"):
        raise InputError(f"combine must be 'mean' or 'sum'; got {combine!r}")
    values = sum(coalition_values(tree, row) for tree in trees)
    values = np.asarray(values, dtype=np.float64)
    if combine == "mean":
        values = values / len(trees)
    return from_coalition_values(values), values[0]


def tree_shap(tree: Any, row: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Path-dependent Shapley values of one tree in polynomial time (TreeSHAP, Lundberg et al.
    2020, Algorithm 2), for any number of features.

    Args:
        tree: a fitted scikit-learn tree structure (`estimator.tree_`).
        row: the row's features in the tree's column order (NaN for missing).

    Returns:
        shape (features, outputs); equal to `path_dependent_shapley([tree], row)[0]`.
    """
    value = tree.value.reshape(tree.node_count, -1)
    cover = tree.weighted_n_node_samples
    left, right = tree.children_left, tree.children_right
    missing_left = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, dtype=bool))
    phi = np.zeros((len(row), value.shape[1]), dtype=np.float64)

    def recurse(node: int, path: list[list[float]], zero: float, one: float, feature: int) -> None:
        path = _extend(path, zero, one, feature)
        if left[node] == -1:
            for i in range(1, len(path)):
                weight = sum(p[3] for p in _unwind(path, i))
                phi[int(path[i][0])] += weight * (path[i][2] - path[i][1]) * value[node]
            return
        split = int(tree.feature[node])
        x = row[split]
        goes_left = bool(missing_left[node]) if np.isnan(x) else bool(x <= tree.threshold[node])
        hot, cold = (left[node], right[node]) if goes_left else (right[node], left[node])
        zero_in, one_in = 1.0, 1.0
        seen = next((i for i in range(1, len(path)) if int(path[i][0]) == split), None)
        if seen is not None:
            zero_in, one_in = path[seen][1], path[seen][2]
            path = _unwind(path, seen)
        recurse(int(hot), path, zero_in * cover[hot] / cover[node], one_in, split)
        recurse(int(cold), path, zero_in * cover[cold] / cover[node], 0.0, split)

    recurse(0, [], 1.0, 1.0, -1)
    return phi


def _extend(path: list[list[float]], zero: float, one: float, feature: int) -> list[list[float]]:
    """The path with one more split: (feature, zero fraction, one fraction, weight) per element."""
    size = len(path)
    grown = [list(p) for p in path] + [[float(feature), zero, one, 1.0 if size == 0 else 0.0]]
    for i in range(size - 1, -1, -1):
        grown[i + 1][3] += one * grown[i][3] * (i + 1) / (size + 1)
        grown[i][3] = zero * grown[i][3] * (size - i) / (size + 1)
    return grown


def _unwind(path: list[list[float]], index: int) -> list[list[float]]:
    """The path without its element `index`, as if that split had never been extended."""
    size = len(path)
    zero, one = path[index][1], path[index][2]
    shrunk = [list(p) for p in path]
    carry = shrunk[size - 1][3]
    for j in range(size - 2, -1, -1):
        if one != 0:
            kept = shrunk[j][3]
            shrunk[j][3] = carry * size / ((j + 1) * one)
            carry = kept - shrunk[j][3] * zero * (size - j - 1) / size
        else:
            shrunk[j][3] = shrunk[j][3] * size / (zero * (size - j - 1))
    for j in range(index, size - 1):
        shrunk[j][0], shrunk[j][1], shrunk[j][2] = shrunk[j + 1][0], shrunk[j + 1][1], shrunk[j + 1][2]
    return shrunk[: size - 1]
