"""Interventional Shapley values estimated by antithetic permutation sampling, for any number of
features.

Each sampled order of the features is walked from the empty coalition to the full one, a feature
joining at each step; its marginal contribution `v(S + i) - v(S)` is one sample of its Shapley
value (v as in `shapley.py`: the model's mean over the background with S from the row). Orders
come in antithetic pairs (an order and its reverse), which cancels much of the variance; the
estimate is the mean over pairs and its error the standard error of that mean. Every order
telescopes to `v(all) - v({})`, so the estimate adds up exactly, to rounding, whatever the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shipyard.attribution.shapley import Columns, Oracle
from shipyard.errors import InputError

__all__ = ["PermutationShapley", "default_permutations", "sampled_orders"]

Floats = npt.NDArray[np.float64]


def default_permutations(n_features: int, background_rows: int, budget: int | None = None) -> int:
    """How many orders (an even number, at least 4) spend about `budget` model rows per explained
    row; the default budget is 2,000 model rows per feature.

    Args:
        n_features: d.
        background_rows: m, the rows every coalition is averaged over.
        budget: model rows per explained row; each order costs (d - 1) * m of them.
    """
    rows = 2000 * n_features if budget is None else budget
    per_order = max(1, n_features - 1) * background_rows
    orders = math.ceil(rows / per_order)
    return max(4, orders + orders % 2)


def sampled_orders(n_features: int, permutations: int, seed: int) -> npt.NDArray[np.intp]:
    """(permutations, d) orders of the features, seeded: pairs of an order and its reverse."""
    rng = np.random.default_rng(seed)
    half = np.stack([rng.permutation(n_features) for _ in range(permutations // 2)])
    orders = np.empty((permutations, n_features), dtype=np.intp)
    orders[0::2] = half
    orders[1::2] = half[:, ::-1]
    return orders


@dataclass(frozen=True)
class PermutationShapley:
    """Antithetic permutation estimates of interventional Shapley values.

    Args:
        oracle: the coalition values of rows (see `shapley.Oracle`).
        names: the features, in the order of the oracle's coalition columns.
        permutations: how many orders to walk (even, >= 4: pairs give the error estimate).
        seed: seeds the orders; the same seed gives the same orders, hence the same values.

    Raises:
        InputError: no features, or fewer than 4 or an odd number of permutations.
    """

    oracle: Oracle
    names: tuple[str, ...]
    permutations: int
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.names:
            raise InputError("permutation Shapley values need at least one feature; got none")
        if self.permutations < 4 or self.permutations % 2:
            raise InputError(
                f"permutation sampling walks antithetic pairs of orders and needs an even number of "
                f"at least 4 permutations to estimate its error; got {self.permutations}"
            )

    def values_of_rows(self, rows: Columns) -> tuple[Floats, Floats, Floats]:
        """The estimated values of many rows, the base value and each row's standard error.

        Args:
            rows: n rows, one array per feature in `names`.

        Returns:
            (phi, empty, error): phi (n, d, outputs); empty (n, outputs), each row's v({});
            error (n,), the standard error of the mean over pairs of orders, largest over
            features and outputs.
        """
        d, p = len(self.names), self.permutations
        orders = sampled_orders(d, p, self.seed)
        # Coalition 0 is empty, 1 is full, then the d - 1 partial ones of each order.
        steps = np.arange(1, d)
        ranks = np.argsort(orders, axis=1)  # ranks[q, i]: when feature i joins order q
        partial = ranks[:, None, :] < steps[None, :, None]  # (p, d - 1, d)
        coalitions = np.concatenate(
            [np.zeros((1, d), dtype=bool), np.ones((1, d), dtype=bool), partial.reshape(-1, d)]
        )
        value = self.oracle(rows, coalitions)  # (n, 2 + p (d - 1), k)
        n, k = value.shape[0], value.shape[2]
        walk = np.empty((n, p, d + 1, k), dtype=np.float64)
        walk[:, :, 0] = value[:, None, 0]
        walk[:, :, d] = value[:, None, 1]
        walk[:, :, 1:d] = value[:, 2:].reshape(n, p, d - 1, k)
        gains = np.diff(walk, axis=2)  # (n, p, d, k): the gain at each step of each order
        samples = np.take_along_axis(gains, ranks[None, :, :, None], axis=2)  # by feature
        pairs = samples.reshape(n, p // 2, 2, d, k).mean(axis=2)
        phi = pairs.mean(axis=1)
        error = pairs.std(axis=1, ddof=1) / math.sqrt(p // 2)
        return phi, value[:, 0], error.reshape(n, -1).max(axis=1)
