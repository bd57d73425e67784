"""A tree ensemble in one neutral form: what every framework's trees are read into, and what the
ONNX and C exports are written from.

Readers (`edge/trees.py` for scikit-learn, `edge/boosters.py` for XGBoost and LightGBM) turn a
fitted model into an `Ensemble`; writers (`edge/tree_onnx.py`, `edge/c_code.py`) never look at
the framework again. The form says exactly how a row is scored, so that a writer can match the
framework bit for bit:

- a row is a vector of float64 features in the model's input order; a categorical feature holds
  its category's code (see `Ensemble.categories`), NaN when missing or unseen;
- at an internal node, a missing value (NaN) goes where `missing_left` says; a categorical node
  (one in `Tree.categories`) sends a code in its set left and any other code right; a numeric
  node sends x left when `x <= threshold` (`x < threshold` when `Ensemble.strict`), comparing in
  float32 first when `Ensemble.float32_inputs` (the framework rounds its inputs to float32);
- each tree adds its reached leaf's `value` row to the outputs: all of them
  (`Ensemble.targets[i] is None`), or the one output the tree serves;
- the outputs are then averaged over the trees when `average`, `base` is added, and `post`
  turns them into what the model answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["Ensemble", "PostTransform", "Tree"]

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

PostTransform = Literal["none", "logistic", "softmax"]
"""What turns summed outputs into answers: nothing (regression, or forests' class fractions), the
logistic function of one output (a binary classifier's positive-class probability; the negative
class's is one minus it), or softmax over the outputs (multiclass boosting)."""


@dataclass(frozen=True, eq=False)
class Tree:
    """One decision tree; nodes are numbered from 0, the root.

    Args:
        feature: per node, the input column it tests (-1 at a leaf).
        threshold: per node, a numeric split's threshold (ignored at leaves and categorical nodes).
        left: per node, the child taken when the test holds (-1 at a leaf).
        right: per node, the other child (-1 at a leaf).
        missing_left: per node, True when a missing value goes left.
        value: (nodes, width) float64: each leaf's contribution (rows of internal nodes unused);
            width is the ensemble's `n_outputs`, or 1 when the tree serves one output.
        categories: node -> the sorted codes that go left at that categorical split.
    """

    feature: Ints
    threshold: Floats
    left: Ints
    right: Ints
    missing_left: Bools
    value: Floats
    categories: Mapping[int, Floats] = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        """How many nodes the tree has, leaves included."""
        return len(self.feature)

    def is_leaf(self) -> Bools:
        """Per node, True at a leaf."""
        return np.asarray(self.left < 0)


@dataclass(frozen=True, eq=False)
class Ensemble:
    """A fitted tree model, framework-neutral.

    Args:
        trees: the trees, in the framework's order (boosting rounds first to last).
        n_features: the model's input columns.
        n_outputs: the outputs the trees add to (1 for regression and binary boosting, one per
            class for forests and multiclass boosting).
        targets: per tree, the one output it adds to (its leaves have width 1), or None for every
            output (its leaves have width `n_outputs`).
        base: added to each output after the trees (boosting's initial prediction); zeros for forests.
        average: divide each output's sum by the number of trees that add to it (forests).
        post: the transform from outputs to answers (`PostTransform`).
        strict: numeric splits send x left when x < threshold (XGBoost) instead of <=.
        float32_inputs: the framework rounds each input to float32 before comparing (scikit-learn's
            trees and forests, XGBoost); HistGradientBoosting and LightGBM compare in float64.
        categories: input column -> its categories as the model was fitted, the code of each
            being its position; only for models that read category values themselves (a
            HistGradientBoosting fitted on a pandas categorical column, LightGBM or XGBoost
            with pandas categories). An export maps these values to codes, anything else to NaN.
        classes: a classifier's labels, in the order of its probabilities; None for regression.
        model: the fitted model's class name, for messages.
    """

    trees: tuple[Tree, ...]
    n_features: int
    n_outputs: int
    targets: tuple[int | None, ...]
    base: Floats
    average: bool = False
    post: PostTransform = "none"
    strict: bool = False
    float32_inputs: bool = False
    categories: Mapping[int, tuple[Any, ...]] = field(default_factory=dict)
    classes: tuple[Any, ...] | None = None
    model: str = ""

    def split_points(self) -> dict[int, Floats]:
        """Per numeric input column, the distinct thresholds its splits use (sorted): the values
        at which a converter that compares differently would flip a row."""
        found: dict[int, list[Floats]] = {}
        for tree in self.trees:
            internal = ~tree.is_leaf()
            for node in np.flatnonzero(internal):
                if int(node) in tree.categories:
                    continue
                found.setdefault(int(tree.feature[node]), []).append(tree.threshold[node : node + 1])
        return {column: np.unique(np.concatenate(parts)) for column, parts in sorted(found.items())}

    def select(self, indices: Any) -> Ensemble:
        """The ensemble of the trees at `indices` (in that order): pruning keeps the first boosting
        rounds (whole rounds: one tree per output), or a forest's most useful trees."""
        picked = [int(i) for i in indices]
        return replace(
            self, trees=tuple(self.trees[i] for i in picked), targets=tuple(self.targets[i] for i in picked)
        )

    def outputs(self, x: Floats) -> Floats:
        """The reference scoring: (rows, n_outputs) after the trees, averaging and `base`, before
        `post`. Written for clarity, not speed: the oracle every writer is tested against.

        Args:
            x: (rows, n_features) float64, categorical columns as codes, NaN for missing.
        """
        x = np.asarray(x, dtype=np.float64)
        compared = x.astype(np.float32).astype(np.float64) if self.float32_inputs else x
        total = np.zeros((len(x), self.n_outputs), dtype=np.float64)
        counts = np.zeros(self.n_outputs, dtype=np.float64)
        for tree, target in zip(self.trees, self.targets, strict=True):
            leaves = self._leaves(tree, compared)
            if target is None:
                total += tree.value[leaves]
                counts += 1
            else:
                total[:, target] += tree.value[leaves, 0]
                counts[target] += 1
        if self.average:
            total /= np.maximum(counts, 1)
        return np.asarray(total + self.base)

    def answers(self, x: Floats) -> Floats:
        """`outputs` after `post`: probabilities (rows, classes) for a classifier, values (rows,)
        for a regressor."""
        raw = self.outputs(x)
        if self.post == "logistic":
            positive = 1.0 / (1.0 + np.exp(-raw[:, 0]))
            return np.column_stack([1.0 - positive, positive])
        if self.post == "softmax":
            shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
            return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))
        return raw[:, 0] if self.classes is None else raw

    def _leaves(self, tree: Tree, x: Floats) -> Ints:
        node = np.zeros(len(x), dtype=np.int64)
        rows = np.arange(len(x))
        while True:
            inner = tree.left[node] >= 0
            if not inner.any():
                return node
            at = node[inner]
            value = x[rows[inner], tree.feature[at]]
            missing = np.isnan(value)
            goes_left = value < tree.threshold[at] if self.strict else value <= tree.threshold[at]
            for categorical in set(np.unique(at).tolist()) & tree.categories.keys():
                here = at == categorical
                goes_left[here] = np.isin(value[here], tree.categories[categorical])
            goes_left = np.where(missing, tree.missing_left[at], goes_left)
            node[inner] = np.where(goes_left, tree.left[at], tree.right[at])
