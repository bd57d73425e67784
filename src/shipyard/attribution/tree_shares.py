"""The shares of one root-to-leaf path's leaf value among its unique features.

A path with L unique features, each with a zero fraction z (the product of the cover ratios of
that feature's splits on the path) and a one fraction o (1 when the row meets all of that
feature's conditions on the path, else 0), is a game whose coalition S is worth
prod_{j in S} o_j * prod_{j not in S} z_j times the leaf value; feature i's Shapley value is
    (o_i - z_i) * sum_m m!(L-1-m)!/L! * e_m(prod_{j != i} (z_j + o_j t))
(e_m: the coefficient of t**m). `shapley_factors` computes it for given ones (per row);
`pattern_table` for every pattern of ones at once (a path's table).
"""

from __future__ import annotations

from math import factorial

import numpy as np
import numpy.typing as npt

__all__ = ["pattern_table", "shapley_factors"]

Floats = npt.NDArray[np.float64]


def shapley_factors(zeros: Floats, ones: Floats) -> Floats:
    """Each unique feature's share of one path's leaf value (multiply by the value).

    Args:
        zeros: (..., L) zero fractions of the path's unique features.
        ones: (..., L) one fractions (0 or 1) for the row or pattern.

    Returns:
        (..., L): (o_i - z_i) * sum_m m!(L-1-m)!/L! * e_m(prod_{j != i}(z_j + o_j t)).
    """
    size = zeros.shape[-1]
    lead = zeros.shape[:-1]
    z = np.ascontiguousarray(zeros, dtype=np.float64).reshape(-1, size)
    o = np.ascontiguousarray(ones, dtype=np.float64).reshape(-1, size)
    poly = np.zeros((size + 1, len(z)), dtype=np.float64)  # coefficient-major, contiguous rows
    poly[0] = 1.0
    for j in range(size):
        shifted = poly[: j + 1] * o[:, j]
        poly[: j + 1] *= z[:, j]
        poly[1 : j + 2] += shifted
    weights = np.array([factorial(m) * factorial(size - 1 - m) / factorial(size) for m in range(size)])
    # take each feature's own factor back out: where o = 1 divide by (t + z) (synthetic
    # division from the top, stable as z <= 1), accumulating the weighted coefficients
    carry = np.repeat(poly[size][:, None], size, axis=1)
    acc = weights[size - 1] * carry
    for m in range(size - 1, 0, -1):
        carry = poly[m][:, None] - z * carry
        acc += weights[m - 1] * carry
    # where o = 0 the factor is the constant z
    with np.errstate(divide="ignore", invalid="ignore"):
        by_zero = (weights @ poly[:size])[:, None] / np.where(z > 0, z, 1.0)
    shares = np.where(o > 0.5, acc, by_zero) * (o - z)
    return shares.reshape((*lead, size))


def pattern_table(zeros: Floats) -> Floats:
    """`shapley_factors` of some paths for every pattern of ones, in O(2**L * L) per path.

    With S the pattern's set of met conditions, G(T) = sum_m w_m e_m(prod_{j in T}(z_j + t))
    and Z(S) = prod_{j not in S} z_j, feature i's share is (1 - z_i) G(S - {i}) Z(S) when i is
    in S and -G(S) Z(S) when it is not; G of every subset comes from one subset recursion.

    Args:
        zeros: (paths, L) zero fractions.

    Returns:
        (paths, 2**L, L): row S (bit k set: feature k's condition is met) of each path's table.
    """
    n_paths, size = zeros.shape
    n_patterns = 2**size
    poly = np.zeros((n_paths, n_patterns, size + 1), dtype=np.float64)
    poly[:, 0, 0] = 1.0
    rest = np.ones((n_paths, n_patterns), dtype=np.float64)  # Z(S)
    for j in range(size):
        low, high = slice(0, 2**j), slice(2**j, 2 ** (j + 1))
        poly[:, high, :] = poly[:, low, :] * zeros[:, j, None, None]
        poly[:, high, 1:] += poly[:, low, :-1]
        met = ((np.arange(n_patterns) >> j) & 1).astype(bool)
        rest[:, ~met] *= zeros[:, j, None]
    weights = np.zeros(size + 1)
    weights[:size] = [factorial(m) * factorial(size - 1 - m) / factorial(size) for m in range(size)]
    value = poly @ weights  # G(T) per subset
    patterns = np.arange(n_patterns)
    shares = np.empty((n_paths, n_patterns, size), dtype=np.float64)
    for i in range(size):
        met = ((patterns >> i) & 1).astype(bool)
        without = value[:, patterns & ~(1 << i)]
        shares[:, :, i] = np.where(met, (1.0 - zeros[:, i, None]) * without, -value) * rest
    return shares
