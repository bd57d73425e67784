"""The share tables of path-dependent TreeSHAP against the per-row polynomial and the
definition (the average marginal contribution over every order of a path's features)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from shipyard.attribution.tree_shares import pattern_table, shapley_factors


def _definition(zeros: np.ndarray, ones: np.ndarray) -> np.ndarray:
    """A path's value for coalition S is prod_{j in S} o_j * prod_{j not in S} z_j."""
    size = len(zeros)

    def value(coalition: set[int]) -> float:
        return float(np.prod([ones[j] if j in coalition else zeros[j] for j in range(size)]))

    phi = np.zeros(size)
    for order in itertools.permutations(range(size)):
        joined: set[int] = set()
        for i in order:
            before = value(joined)
            joined.add(i)
            phi[i] += value(joined) - before
    return phi / math.factorial(size)


@pytest.mark.parametrize("size", [1, 2, 3, 5], ids=lambda n: f"L{n}")
def test_the_pattern_table_equals_the_polynomial_and_the_definition(size: int) -> None:
    rng = np.random.default_rng(size)
    zeros = rng.uniform(0.05, 1.0, size=(3, size))
    zeros[0, 0] = 1.0  # a split every training sample took
    table = pattern_table(zeros)
    patterns = ((np.arange(2**size)[:, None] >> np.arange(size)) & 1).astype(np.float64)
    for path in range(3):
        ones = patterns
        slow = shapley_factors(np.broadcast_to(zeros[path], ones.shape), ones)
        np.testing.assert_allclose(table[path], slow, rtol=0, atol=1e-12)
        for pattern in (0, 2**size - 1, 2 ** (size - 1)):
            expected = _definition(zeros[path], patterns[pattern])
            np.testing.assert_allclose(table[path, pattern], expected, rtol=0, atol=1e-12)
