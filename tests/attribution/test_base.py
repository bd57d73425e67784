"""The answer every explainer gives: additivity checked, rows taken, top features ordered."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.attribution.base import EXACT_TOLERANCE, Attributions, additivity_error, tolerance
from shipyard.errors import ExplanationError


def answer(gap: float, *, method: str = "tree_shap", exact: bool = True, scale: float = 1.0) -> Attributions:
    values = np.array([[[0.5], [-0.25], [0.0]], [[0.1], [0.2], [-0.3]]])
    base = np.full((2, 1), scale)
    output = values.sum(axis=1) + base
    output[1, 0] += gap
    return Attributions(
        values,
        base,
        output,
        ("a", "b", "c"),
        ("1",),
        "log_odds",
        method,
        exact,
        additivity_error(values, base, output),
    )


def test_additivity_is_the_largest_gap_of_each_row() -> None:
    explained = answer(3e-7)
    assert explained.additivity[0] == 0.0
    assert explained.additivity[1] == pytest.approx(3e-7)


def test_an_exact_method_within_the_tolerance_is_answered() -> None:
    assert answer(EXACT_TOLERANCE / 2).checked() is not None


def test_an_exact_method_past_the_tolerance_raises_naming_the_row_and_gap() -> None:
    with pytest.raises(ExplanationError, match=r"on row 1.*by 2e-06.*nothing was answered"):
        answer(2e-6).checked("credit:1")


def test_a_nan_gap_is_refused() -> None:
    with pytest.raises(ExplanationError):
        answer(float("nan")).checked()


def test_an_estimate_is_not_held_to_the_exact_tolerance() -> None:
    assert answer(0.1, method="lime", exact=False).checked().additivity[1] == pytest.approx(0.1)


def test_float32_frameworks_get_a_tolerance_relative_to_their_output() -> None:
    big = answer(3e-5, method="xgboost_contribs", scale=300.0)
    assert tolerance("xgboost_contribs", big.output)[1] == pytest.approx(EXACT_TOLERANCE * 300, rel=0.01)
    big.checked()
    with pytest.raises(ExplanationError):
        answer(3e-5, method="tree_shap", scale=300.0).checked()


def test_top_orders_by_absolute_value_and_take_keeps_rows() -> None:
    explained = answer(0.0)
    assert explained.top(0, 2) == [("a", 0.5), ("b", -0.25)]
    assert explained.top(1, 3) == [("c", -0.3), ("b", 0.2), ("a", 0.1)]
    second = explained.take(np.array([1], dtype=np.intp))
    assert second.n_rows == 1
    assert second.values[0, 2, 0] == -0.3
