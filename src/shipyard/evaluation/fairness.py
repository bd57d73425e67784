"""Group fairness of a binary classifier, by Fairlearn's definitions.

Per group of a sensitive feature: count, selection rate (share predicted positive), true positive
rate and false positive rate. Across groups: demographic parity difference (largest minus
smallest selection rate) and ratio (smallest over largest), equal opportunity difference (TPR
spread), and equalized odds difference (the larger of the TPR and FPR spreads). Computed with
numpy from one pass of group counts; the tests hold each number to Fairlearn's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.core.batch import Array

__all__ = ["group_fairness"]


def group_fairness(groups: Array, y_true: Array, y_pred: Array) -> dict[str, Any]:
    """Fairness of binary predictions (1 = positive) across the values of one sensitive feature.

    Args:
        groups: the sensitive feature's value per row (missing values form the group 'None').
        y_true: 1 for a positive label, else 0.
        y_pred: 1 for a positive prediction, else 0.
    """
    import pandas as pd

    missing = pd.isna(groups)
    keys = np.where(missing, "None", groups.astype(str)).astype(object)
    names, index = np.unique(keys, return_inverse=True)
    k = len(names)
    truth = y_true.astype(bool)
    predicted = y_pred.astype(bool)
    count = np.bincount(index, minlength=k).astype(np.float64)
    selected = np.bincount(index, weights=predicted, minlength=k)
    positives = np.bincount(index, weights=truth, minlength=k)
    negatives = count - positives
    true_positive = np.bincount(index, weights=truth & predicted, minlength=k)
    false_positive = np.bincount(index, weights=~truth & predicted, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        selection_rate = selected / count
        tpr = np.where(positives > 0, true_positive / positives, np.nan)
        fpr = np.where(negatives > 0, false_positive / negatives, np.nan)
    by_group = {
        str(name): {
            "count": int(count[j]),
            "selection_rate": float(selection_rate[j]),
            "tpr": _number(tpr[j]),
            "fpr": _number(fpr[j]),
        }
        for j, name in enumerate(names)
    }
    tpr_spread = _spread(tpr)
    fpr_spread = _spread(fpr)
    top = float(np.max(selection_rate))
    return {
        "groups": by_group,
        "demographic_parity_difference": _spread(selection_rate),
        "demographic_parity_ratio": float(np.min(selection_rate) / top) if top > 0 else None,
        "equal_opportunity_difference": tpr_spread,
        "equalized_odds_difference": None
        if tpr_spread is None or fpr_spread is None
        else max(tpr_spread, fpr_spread),
    }


def _spread(values: Array) -> float | None:
    present = values[~np.isnan(values)]
    return float(present.max() - present.min()) if len(present) else None


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
