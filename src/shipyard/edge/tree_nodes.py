"""The attributes of one `ai.onnx.ml` opset 5 `TreeEnsemble` node holding an `Ensemble`'s trees.

Numeric splits are `BRANCH_LEQ` (`BRANCH_LT` for strict ensembles), categorical ones
`BRANCH_MEMBER` (their sets one after another, each closed by a NaN); a missing value takes the
true branch when `nodes_missing_value_tracks_true`. The node only sums: it adds each reached
leaf's weight to the leaf's target. An ONNX leaf adds to one target, so a tree adding to every
output is written once per output.

ONNX Runtime has read a tree whose root has equal true and false ids as a single leaf, so the
writer never numbers a root's children alike, and writes a one-leaf tree as a split between two
equal leaves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.edge.ensemble import Ensemble, Tree

__all__ = ["tree_ensemble_attributes"]

_LEQ, _LT, _MEMBER = 0, 1, 6
_SUM = 1


def tree_ensemble_attributes(ensemble: Ensemble, element: type[np.floating[Any]]) -> dict[str, Any]:
    """The TreeEnsemble's attributes, its thresholds, sets and weights of type `element`
    (np.float64 or np.float32: in float32, each threshold is the float32 that splits float32
    inputs exactly as the float64 one does)."""
    nodes = _Nodes(element, ensemble.strict)
    for tree, target in zip(ensemble.trees, ensemble.targets, strict=True):
        if target is None:
            for k in range(ensemble.n_outputs):
                nodes.add(tree, tree.value[:, k], k)
        else:
            nodes.add(tree, tree.value[:, 0], target)
    return nodes.attributes(ensemble.n_outputs)


class _Nodes:
    """The flat `nodes_*`/`leaf_*` arrays of a TreeEnsemble, filled one tree at a time."""

    def __init__(self, element: type[np.floating[Any]], strict: bool) -> None:
        self.element = element
        self.strict = strict
        self.parts: dict[str, list[npt.NDArray[Any]]] = {
            name: []
            for name in [
                "modes",
                "featureids",
                "splits",
                "tracks",
                "truenodeids",
                "trueleafs",
                "falsenodeids",
                "falseleafs",
                "targetids",
                "weights",
                "members",
            ]
        }
        self.roots: list[int] = []
        self.n_nodes = 0
        self.n_leaves = 0

    def add(self, tree: Tree, weights: npt.NDArray[np.float64], target: int) -> None:
        """One tree adding `weights` (per node; leaves used) to output `target`."""
        leaf = tree.is_leaf()
        if leaf[0]:
            self._one_leaf(float(weights[0]), target)
            return
        internal, leaves = np.flatnonzero(~leaf), np.flatnonzero(leaf)
        node_id = np.full(len(leaf), -1, np.int64)
        node_id[internal] = self.n_nodes + np.arange(len(internal))
        left, right = tree.left[internal], tree.right[internal]
        if leaf[left[0]] != leaf[right[0]]:
            ids = [self._id(c, leaf, leaves, node_id) for c in (left[0], right[0])]
            if ids[0] == ids[1]:
                self._leaf(0.0, 0)  # shifts this tree's leaves: its root's children differ
        leaf_id = np.full(len(leaf), -1, np.int64)
        leaf_id[leaves] = self.n_leaves + np.arange(len(leaves))
        self.roots.append(self.n_nodes)
        member = np.array([int(n) in tree.categories for n in internal], dtype=bool)
        modes = np.where(member, _MEMBER, _LT if self.strict else _LEQ).astype(np.uint8)
        splits = self._splits(tree.threshold[internal])
        members = []
        for position in np.flatnonzero(member):
            values = np.asarray(tree.categories[int(internal[position])], dtype=self.element)
            if len(values) == 0:  # nothing goes left: x < -inf never holds
                modes[position], splits[position] = _LT, -np.inf
                continue
            members.append(np.append(values, np.nan).astype(self.element))
        splits[member & (modes == _MEMBER)] = 0
        self._extend(
            modes=modes,
            featureids=tree.feature[internal],
            splits=splits,
            tracks=tree.missing_left[internal].astype(np.int64),
            truenodeids=np.where(leaf[left], leaf_id[left], node_id[left]),
            trueleafs=leaf[left].astype(np.int64),
            falsenodeids=np.where(leaf[right], leaf_id[right], node_id[right]),
            falseleafs=leaf[right].astype(np.int64),
            targetids=np.full(len(leaves), target, np.int64),
            weights=weights[leaves].astype(self.element),
            members=np.concatenate(members) if members else np.zeros(0, self.element),
        )
        self.n_nodes += len(internal)
        self.n_leaves += len(leaves)

    def _id(
        self, child: int, leaf: npt.NDArray[np.bool_], leaves: npt.NDArray[Any], node_id: npt.NDArray[Any]
    ) -> int:
        return int(self.n_leaves + np.searchsorted(leaves, child)) if leaf[child] else int(node_id[child])

    def attributes(self, n_targets: int) -> dict[str, Any]:
        from onnx import numpy_helper

        joined = {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in self.parts.items()}
        found: dict[str, Any] = {
            "n_targets": n_targets,
            "aggregate_function": _SUM,
            "post_transform": 0,
            "tree_roots": self.roots,
            "nodes_modes": numpy_helper.from_array(joined["modes"].astype(np.uint8)),
            "nodes_featureids": joined["featureids"].astype(np.int64).tolist(),
            "nodes_splits": numpy_helper.from_array(joined["splits"].astype(self.element)),
            "nodes_missing_value_tracks_true": joined["tracks"].astype(np.int64).tolist(),
            "nodes_truenodeids": joined["truenodeids"].astype(np.int64).tolist(),
            "nodes_trueleafs": joined["trueleafs"].astype(np.int64).tolist(),
            "nodes_falsenodeids": joined["falsenodeids"].astype(np.int64).tolist(),
            "nodes_falseleafs": joined["falseleafs"].astype(np.int64).tolist(),
            "leaf_targetids": joined["targetids"].astype(np.int64).tolist(),
            "leaf_weights": numpy_helper.from_array(joined["weights"].astype(self.element)),
        }
        if len(joined["members"]):
            found["membership_values"] = numpy_helper.from_array(joined["members"].astype(self.element))
        return found

    def _splits(self, threshold: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
        """The thresholds in the element type; in float32, the float32 that splits float32
        inputs as the float64 threshold does."""
        if self.element is np.float64:
            return threshold.copy()
        with np.errstate(over="ignore"):
            single = threshold.astype(np.float32)
        wide = single.astype(np.float64)
        if self.strict:  # x < t  <=>  x < the smallest float32 >= t
            below = wide < threshold
            single[below] = np.nextafter(single[below], np.float32(np.inf))
        else:  # x <= t  <=>  x <= the largest float32 <= t
            above = wide > threshold
            single[above] = np.nextafter(single[above], np.float32(-np.inf))
        return single

    def _one_leaf(self, weight: float, target: int) -> None:
        self.roots.append(self.n_nodes)
        self._extend(
            modes=np.array([_LEQ], np.uint8),
            featureids=np.zeros(1, np.int64),
            splits=np.zeros(1, self.element),
            tracks=np.zeros(1, np.int64),
            truenodeids=np.array([self.n_leaves]),
            trueleafs=np.ones(1, np.int64),
            falsenodeids=np.array([self.n_leaves + 1]),
            falseleafs=np.ones(1, np.int64),
            targetids=np.full(2, target, np.int64),
            weights=np.full(2, weight, self.element),
            members=np.zeros(0, self.element),
        )
        self.n_nodes += 1
        self.n_leaves += 2

    def _leaf(self, weight: float, target: int) -> None:
        self.parts["targetids"].append(np.array([target], np.int64))
        self.parts["weights"].append(np.array([weight], self.element))
        self.n_leaves += 1

    def _extend(self, **columns: npt.NDArray[Any]) -> None:
        for name, values in columns.items():
            self.parts[name].append(values)
