"""Exact interventional Shapley values against a brute force over every order of the features."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from shipyard.attribution.shapley import MAX_EXACT_FEATURES, ExactShapley, coalition_weights
from shipyard.errors import InputError


def brute_force(
    model: Any, row: Mapping[str, Any], background: Mapping[str, np.ndarray], names: list[str]
) -> np.ndarray:
    """The average marginal contribution of each feature over every order of joining: the definition."""
    m = len(background[names[0]])

    def value(coalition: set[str]) -> np.ndarray:
        columns = {
            n: np.array([row[n]] * m, dtype=object)
            if n in coalition
            else np.asarray(background[n], dtype=object)
            for n in names
        }
        return np.asarray(model(columns), dtype=np.float64).reshape(m, -1).mean(axis=0)

    phi = np.zeros((len(names), value(set()).shape[0]))
    for order in itertools.permutations(names):
        joined: set[str] = set()
        for name in order:
            before = value(joined)
            joined.add(name)
            phi[names.index(name)] += value(joined) - before
    return phi / math.factorial(len(names))


def nonlinear(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    a, b, c = (np.asarray(columns[n], dtype=np.float64) for n in ("a", "b", "c"))
    colour = np.asarray(columns["colour"], dtype=object)
    bonus = np.where(colour == "red", 2.0, np.where(colour == "blue", -1.0, 0.0))
    first = np.tanh(a * b) + c**2 + bonus * a
    return np.column_stack([first, np.maximum(a, c) - b * bonus])


@pytest.fixture
def background() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "a": rng.normal(size=7),
        "b": rng.normal(size=7),
        "c": rng.uniform(-1, 1, size=7),
        "colour": np.array(["red", "blue", "green", "red", "green", "blue", "red"], dtype=object),
    }


def test_values_equal_the_brute_force_over_every_order_for_mixed_features_and_two_outputs(
    background: dict[str, np.ndarray],
) -> None:
    names = ["a", "b", "c", "colour"]
    explainer = ExactShapley(nonlinear, background, names)
    for row in (
        {"a": 0.3, "b": -1.2, "c": 0.9, "colour": "blue"},
        {"a": -2.0, "b": 0.5, "c": -0.1, "colour": "pink"},
    ):
        phi, base = explainer.values(row)
        assert phi.shape == (4, 2) and base.shape == (2,)
        np.testing.assert_allclose(phi, brute_force(nonlinear, row, background, names), rtol=0, atol=1e-9)
        f_x = nonlinear({n: np.array([row[n]], dtype=object) for n in names})[0]
        assert np.abs(phi.sum(axis=0) + base - f_x).max() <= 1e-9  # additivity, to rounding
        np.testing.assert_allclose(base, nonlinear(background).mean(axis=0), rtol=0, atol=1e-12)


def test_a_linear_model_gets_its_closed_form() -> None:
    rng = np.random.default_rng(1)
    names = [f"x{i}" for i in range(MAX_EXACT_FEATURES)]
    background = {n: rng.normal(size=5) for n in names}
    w = rng.normal(size=len(names))

    def linear(columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.column_stack([columns[n] for n in names]) @ w + 3.0

    row = {n: float(v) for n, v in zip(names, rng.normal(size=len(names)), strict=True)}
    phi, base = ExactShapley(linear, background, names).values(row)
    expected = w * (np.array([row[n] for n in names]) - np.array([background[n].mean() for n in names]))
    np.testing.assert_allclose(phi[:, 0], expected, rtol=0, atol=1e-9)
    assert base[0] == pytest.approx(linear(background).mean(), abs=1e-12)


def test_the_weights_of_the_coalitions_that_leave_a_feature_out_sum_to_one() -> None:
    for d in range(1, 13):
        weights = coalition_weights(d)
        assert sum(math.comb(d - 1, s) * weights[s] for s in range(d)) == pytest.approx(1.0, abs=1e-12)


def test_a_model_with_too_many_features_is_refused_with_the_method_that_works() -> None:
    names = [f"x{i}" for i in range(MAX_EXACT_FEATURES + 1)]
    with pytest.raises(InputError, match=r"at most 12 features; this model has 13.*sampling estimator"):
        ExactShapley(lambda c: np.zeros(1), {n: np.zeros(2) for n in names}, names)


@pytest.mark.parametrize(
    ("background", "names", "message"),
    [
        ({"a": np.zeros(2)}, [], "at least one feature"),
        ({"a": np.zeros(2)}, ["a", "b"], "no column 'b'"),
        ({"a": np.zeros(2), "b": np.zeros(3)}, ["a", "b"], r"one length >= 1; got lengths \[2, 3\]"),
        ({"a": np.zeros(0)}, ["a"], r"got lengths \[0\]"),
    ],
)
def test_a_bad_background_is_refused_by_name(
    background: dict[str, np.ndarray], names: list[str], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        ExactShapley(lambda c: np.zeros(1), background, names)


def test_small_chunks_give_the_same_values(background: dict[str, np.ndarray]) -> None:
    names = ["a", "b", "c", "colour"]
    row = {"a": 0.3, "b": -1.2, "c": 0.9, "colour": "red"}
    whole, base = ExactShapley(nonlinear, background, names).values(row)
    chunked, chunked_base = ExactShapley(nonlinear, background, names, chunk_rows=10).values(row)
    np.testing.assert_array_equal(whole, chunked)
    np.testing.assert_array_equal(base, chunked_base)
