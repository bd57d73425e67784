"""Bias mitigation by reweighing (Kamiran and Calders, 2012), a pre-processing recipe.

Each training row of group g and label y gets the weight P(g) P(y) / P(g, y): in the weighted
data the label is independent of the group, so a model fitted with these `sample_weight`s learns
less of the group's base-rate difference. Retrain with the weights, register the result as a new
version, and evaluate it with the same sensitive features to see what changed (docs/evaluation.md
walks through it, and through Fairlearn's ThresholdOptimizer as a post-processing alternative).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shipyard.core.batch import Array
from shipyard.errors import EvaluationError

__all__ = ["reweighing_weights"]


def reweighing_weights(groups: Any, labels: Any) -> Array:
    """Row weights P(g) P(y) / P(g, y) that make the label independent of the group.

    Args:
        groups: each row's sensitive group (a column, list or Series; several features can be
            combined into one group key first).
        labels: each row's label.

    Returns:
        One weight per row; their mean is 1.

    Raises:
        EvaluationError: the two have different lengths or no rows.
    """
    g = pd.Series(np.asarray(groups, dtype=object)).astype(str)
    y = pd.Series(np.asarray(labels, dtype=object)).astype(str)
    if len(g) != len(y):
        raise EvaluationError(
            f"reweighing needs one group per label; got {len(g)} groups and {len(y)} labels"
        )
    if len(g) == 0:
        raise EvaluationError("reweighing needs at least one row")
    n = len(g)
    p_group = g.map(g.value_counts() / n)
    p_label = y.map(y.value_counts() / n)
    joint = pd.Series(list(zip(g, y, strict=True)))
    p_joint = joint.map(joint.value_counts() / n)
    return np.asarray((p_group * p_label / p_joint).to_numpy(dtype=np.float64))
