"""Group fairness against Fairlearn's own metrics."""

from __future__ import annotations

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from shipyard.evaluation.fairness import group_fairness


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 3000
    groups = rng.choice(np.array(["a", "b", "c"], dtype=object), n, p=[0.5, 0.3, 0.2])
    y_true = (rng.random(n) < np.where(groups == "a", 0.3, 0.5)).astype(int)
    y_pred = ((rng.random(n) < 0.8) == y_true.astype(bool)).astype(int)
    y_pred[groups == "c"] = (rng.random(int((groups == "c").sum())) < 0.7).astype(int)
    return groups, y_true, y_pred


def test_group_rates_equal_fairlearns(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    groups, y_true, y_pred = data
    out = group_fairness(groups, y_true, y_pred)
    frame = MetricFrame(
        metrics={"selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=groups,
    )
    for group, row in frame.by_group.iterrows():
        mine = out["groups"][str(group)]
        assert mine["selection_rate"] == pytest.approx(row["selection_rate"])
        assert mine["tpr"] == pytest.approx(row["tpr"])
        assert mine["fpr"] == pytest.approx(row["fpr"])
    assert sum(g["count"] for g in out["groups"].values()) == len(y_true)


def test_summary_differences_equal_fairlearns(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    groups, y_true, y_pred = data
    out = group_fairness(groups, y_true, y_pred)
    kwargs = {"y_true": y_true, "y_pred": y_pred, "sensitive_features": groups}
    assert out["demographic_parity_difference"] == pytest.approx(demographic_parity_difference(**kwargs))
    assert out["demographic_parity_ratio"] == pytest.approx(demographic_parity_ratio(**kwargs))
    assert out["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(**kwargs))
    tpr = MetricFrame(metrics=true_positive_rate, **kwargs).difference()
    assert out["equal_opportunity_difference"] == pytest.approx(tpr)


def test_missing_group_values_form_their_own_group() -> None:
    groups = np.array(["a", None, "a", None], dtype=object)
    out = group_fairness(groups, np.array([1, 0, 1, 1]), np.array([1, 0, 0, 1]))
    assert set(out["groups"]) == {"a", "None"}
