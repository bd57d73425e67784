"""Reweighing: weights under which the label is independent of the group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard import EvaluationError, reweighing_weights


def test_weighted_positive_rate_is_the_same_in_every_group() -> None:
    rng = np.random.default_rng(0)
    groups = rng.choice(["a", "b", "c"], 3000, p=[0.5, 0.3, 0.2])
    labels = (rng.random(3000) < np.where(groups == "a", 0.6, 0.2)).astype(int)
    weights = reweighing_weights(groups, labels)
    frame = pd.DataFrame({"g": groups, "y": labels, "w": weights})
    rates = frame.groupby("g").apply(lambda f: np.average(f["y"], weights=f["w"]), include_groups=False)
    assert rates.max() - rates.min() < 1e-12
    assert rates.iloc[0] == pytest.approx(labels.mean())
    assert weights.mean() == pytest.approx(1.0)


def test_kamiran_calders_formula_on_a_small_table() -> None:
    groups = ["a", "a", "a", "b"]
    labels = [1, 1, 0, 0]
    # P(a)=3/4, P(y=1)=1/2, P(a,1)=1/2 -> 0.75; P(a,0)=1/4 -> 1.5; P(b)=1/4, P(0)=1/2, P(b,0)=1/4 -> 0.5
    assert reweighing_weights(groups, labels).tolist() == [0.75, 0.75, 1.5, 0.5]


def test_lengths_must_match() -> None:
    with pytest.raises(EvaluationError, match="3 groups and 2 labels"):
        reweighing_weights(["a", "b", "c"], [1, 0])
