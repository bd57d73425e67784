"""Antithetic permutation sampling of Shapley values: its budget, its seeded orders, and its
estimates against the exact values of small models."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pytest

from shipyard.attribution.sampling import PermutationShapley, default_permutations, sampled_orders
from shipyard.attribution.shapley import all_coalitions, coalition_values, from_coalition_values
from shipyard.errors import InputError

NAMES = ("a", "b", "c", "d")
RNG = np.random.default_rng(0)
BACKGROUND = {n: RNG.normal(size=12) for n in NAMES}
ROWS = {n: RNG.normal(size=3) for n in NAMES}


def linear(columns: Any) -> np.ndarray:
    return 2.0 * columns["a"] - columns["b"] + 0.5 * columns["c"] + 3.0


def interacting(columns: Any) -> np.ndarray:
    a, b, c, d = (np.asarray(columns[n], dtype=np.float64) for n in NAMES)
    return np.stack([a * b + np.sin(c), np.maximum(c, d) - a * d], axis=1)


def oracle(model: Any) -> Any:
    return functools.partial(coalition_values, model, BACKGROUND, NAMES)


def exact(model: Any) -> np.ndarray:
    return from_coalition_values(oracle(model)(ROWS, all_coalitions(len(NAMES))))


def test_the_default_budget_is_about_two_thousand_model_rows_per_feature_in_an_even_number_of_orders() -> (
    None
):
    # 5 features, 10 background rows: 10,000 model rows at 40 per order
    assert default_permutations(5, 10) == 250
    assert default_permutations(5, 10, budget=40 * 7) == 8  # 7 orders, made even
    assert default_permutations(5, 10, budget=1) == 4  # never fewer than two pairs
    assert default_permutations(1, 3) == 2000 // 3 + 1 + (2000 // 3 + 1) % 2  # one feature: m rows per order
    for d, m in ((2, 1), (3, 100), (30, 50)):
        n = default_permutations(d, m)
        assert n >= 4 and n % 2 == 0


def test_orders_come_in_pairs_of_a_permutation_and_its_reverse_and_depend_only_on_the_seed() -> None:
    orders = sampled_orders(6, 10, seed=3)
    assert orders.shape == (10, 6) and orders.dtype == np.intp
    for order in orders:
        assert sorted(order.tolist()) == list(range(6))
    np.testing.assert_array_equal(orders[1::2], orders[0::2, ::-1])
    np.testing.assert_array_equal(orders, sampled_orders(6, 10, seed=3))
    assert not np.array_equal(orders, sampled_orders(6, 10, seed=4))


@pytest.mark.parametrize("permutations", [0, 2, 3, 5, 7], ids=lambda p: f"permutations-{p}")
def test_fewer_than_four_or_an_odd_number_of_permutations_is_refused(permutations: int) -> None:
    with pytest.raises(InputError, match=rf"even number of at least 4 permutations.*got {permutations}"):
        PermutationShapley(oracle(linear), NAMES, permutations)


def test_no_features_is_refused() -> None:
    with pytest.raises(InputError, match="at least one feature; got none"):
        PermutationShapley(oracle(linear), (), 4)


def test_an_additive_model_is_estimated_exactly_with_zero_error() -> None:
    phi, empty, error = PermutationShapley(oracle(linear), NAMES, 4, seed=1).values_of_rows(ROWS)
    assert phi.shape == (3, 4, 1) and empty.shape == (3, 1) and error.shape == (3,)
    np.testing.assert_allclose(phi, exact(linear), rtol=0, atol=1e-12)
    np.testing.assert_allclose(phi[:, 3], 0.0, atol=1e-12)  # 'd' is not used
    np.testing.assert_allclose(error, 0.0, atol=1e-12)
    np.testing.assert_allclose(empty[:, 0], linear(BACKGROUND).mean(), rtol=0, atol=1e-12)


def test_estimates_add_up_whatever_the_budget_and_approach_the_exact_values() -> None:
    truth = exact(interacting)
    full = interacting(ROWS)
    for p in (4, 400):
        phi, empty, error = PermutationShapley(oracle(interacting), NAMES, p, seed=0).values_of_rows(ROWS)
        assert phi.shape == (3, 4, 2)
        np.testing.assert_allclose(phi.sum(axis=1) + empty, full, rtol=0, atol=1e-12)
        gap = np.abs(phi - truth).reshape(3, -1).max(axis=1)
        assert np.all(error > 0)
        # the standard error is honest: the estimate is within a few of them of the truth
        assert np.all(gap <= 5 * error + 1e-12), (p, gap, error)
    # 4 features have only 24 orders: 200 pairs of them leave a small error
    assert error.max() < 0.1


def test_the_same_seed_gives_the_same_values_and_another_seed_other_values() -> None:
    def values(seed: int) -> np.ndarray:
        return PermutationShapley(oracle(interacting), NAMES, 6, seed=seed).values_of_rows(ROWS)[0]

    np.testing.assert_array_equal(values(7), values(7))
    assert not np.array_equal(values(7), values(8))


def test_one_feature_gets_the_whole_change() -> None:
    names = ("a",)
    background = {"a": np.arange(4.0)}
    rows = {"a": np.array([10.0])}
    sampler = PermutationShapley(
        functools.partial(coalition_values, lambda c: c["a"] ** 2, background, names), names, 4
    )
    phi, empty, error = sampler.values_of_rows(rows)
    assert math.isclose(float(empty[0, 0]), 3.5)
    assert math.isclose(float(phi[0, 0, 0]), 100.0 - 3.5)
    assert float(error[0]) == 0.0
