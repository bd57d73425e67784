"""One column's verdict: effect sizes that are also significant, missing shares, unseen categories."""

from __future__ import annotations

import numpy as np
import pytest

from drift_samples import categories, drift, normal, stat
from shipyard.monitoring.drift import DriftSettings


def test_clearly_shifted_numeric_feature_drifts() -> None:
    column = drift({"x": normal(27, 5000)}, {"x": normal(28, 5000, loc=0.5)}).column("x")
    assert column.level == "drift"
    assert column.drifted


def test_feature_of_the_same_distribution_is_ok() -> None:
    column = drift({"x": normal(29, 5000)}, {"x": normal(30, 5000)}).column("x")
    assert column.level == "ok"


def test_tiny_significant_shift_on_many_rows_is_not_drift() -> None:
    column = drift({"x": normal(31, 50_000)}, {"x": normal(32, 50_000, loc=0.04)}).column("x")
    assert stat(column, "ks_p") < 0.01
    assert stat(column, "wasserstein_norm") < 0.1
    assert column.level != "drift"


def test_missing_share_jump_drifts_a_numeric_feature() -> None:
    current = normal(40, 5000)
    current[::5] = np.nan  # 20% missing, against none in the reference
    column = drift({"x": normal(39, 5000)}, {"x": current}).column("x")
    assert stat(column, "missing_current") == pytest.approx(0.2)
    assert column.level == "drift"
    assert any("missing share" in r for r in column.reasons)


def test_missing_share_jump_drifts_a_categorical_feature() -> None:
    current = categories(42, 3000, ["a", "b"], [0.5, 0.5])
    current[::4] = None
    column = drift({"c": categories(41, 3000, ["a", "b"], [0.5, 0.5])}, {"c": current}).column("c")
    assert column.level == "drift"
    assert any("missing share" in r for r in column.reasons)


def test_unseen_categories_drift_and_are_listed() -> None:
    settings = DriftSettings.parse("defaults: {js: 0.9}")  # only the unseen share can flag
    ref = categories(43, 3000, ["a", "b", "c"], [0.5, 0.3, 0.2])
    cur = categories(44, 2000, ["a", "b", "c", "z", "y"], [0.49, 0.29, 0.195, 0.015, 0.01])
    column = drift({"c": ref}, {"c": cur}, settings=settings).column("c")
    assert column.level == "drift"
    assert [r for r in column.reasons if "never seen" in r] == list(column.reasons)
    assert dict(column.unseen) == {"z": int(np.sum(cur == "z")), "y": int(np.sum(cur == "y"))}
    assert stat(column, "unseen_share") == pytest.approx(np.mean((cur == "z") | (cur == "y")))


def test_a_few_unseen_values_in_a_small_window_do_not_flag() -> None:
    settings = DriftSettings.parse("defaults: {js: 0.9}")  # only the unseen share can flag
    ref = categories(51, 3000, ["a", "b"], [0.6, 0.4])
    cur = categories(52, 200, ["a", "b"], [0.6, 0.4]).astype(object)
    cur[:3] = "typo"  # 1.5% of the window, above the 1% share, but only 3 values
    column = drift({"c": ref}, {"c": cur}, settings=settings).column("c")
    assert column.level == "ok"
    assert dict(column.unseen) == {"typo": 3}
    assert any("too few to flag" in r for r in column.reasons)
    cur[:12] = "typo"  # 12 values: more than unseen_count and significant
    assert drift({"c": ref}, {"c": cur}, settings=settings).column("c").level == "drift"
