"""Exact interventional Shapley values over every coalition of features, for any model.

The value of a coalition S of features for a row x is the model's mean output over a background
sample b with the features in S taken from x and the rest from b:
`v(S) = mean_b f(x_S, b_~S)`. Feature i's Shapley value is
`phi_i = sum over S without i of |S|! (d - |S| - 1)! / d! * (v(S + i) - v(S))`.
With d features that is 2**d coalitions, each predicted on the whole background, so it is exact
and practical up to `MAX_EXACT_FEATURES` features; above that a sampling estimator is the method.

By construction the values add up: `sum(phi) + v({}) == v(all) == f(x)`, to rounding.
The model is given as a function of columns (one array per feature, any dtype), so strings and
categories are mixed exactly as numbers are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.errors import InputError

__all__ = ["MAX_EXACT_FEATURES", "ExactShapley", "coalition_weights", "from_coalition_values"]

MAX_EXACT_FEATURES = 12
"""The most features exact model-agnostic Shapley values are computed for (2**12 coalitions)."""

Columns = Mapping[str, npt.NDArray[Any]]
Model = Callable[[Columns], npt.NDArray[np.float64]]
"""Columns of equal length in, one row of outputs per row out: shape (rows,) or (rows, outputs)."""


def coalition_weights(n_features: int) -> npt.NDArray[np.float64]:
    """The Shapley weight of a coalition of each size s that leaves a feature out:
    s! (d - s - 1)! / d!, for s = 0 .. d - 1."""
    d = n_features
    return np.array([1.0 / (d * math.comb(d - 1, s)) for s in range(d)], dtype=np.float64)


@dataclass(frozen=True)
class ExactShapley:
    """Exact interventional Shapley values of `model` against a background sample.

    Args:
        model: the model as a function of columns (see `Model`).
        background: the background sample, one array per feature (all of one length >= 1).
        names: the features to attribute to, in order; every one must be in `background`.
        chunk_rows: how many synthetic rows are predicted in one call of `model`.

    Raises:
        InputError: no features, more than `MAX_EXACT_FEATURES`, an empty background, or a
            feature missing from it.
    """

    model: Model
    background: Columns
    names: Sequence[str]
    chunk_rows: int = 262_144

    def __post_init__(self) -> None:
        d = len(self.names)
        if d == 0:
            raise InputError("exact Shapley values need at least one feature; got none")
        if d > MAX_EXACT_FEATURES:
            raise InputError(
                f"exact Shapley values over every coalition are computed for at most "
                f"{MAX_EXACT_FEATURES} features; this model has {d} (2**{d} coalitions). "
                "Use a sampling estimator (method=permutation) instead"
            )
        missing = [n for n in self.names if n not in self.background]
        if missing:
            raise InputError(
                f"the background sample has no column {missing[0]!r}; expected {list(self.names)}"
            )
        sizes = {len(self.background[n]) for n in self.names}
        if len(sizes) != 1 or 0 in sizes:
            raise InputError(
                f"the background columns must share one length >= 1; got lengths {sorted(sizes)}"
            )

    @property
    def background_rows(self) -> int:
        """How many rows the background sample has."""
        return len(self.background[self.names[0]])

    def values(self, row: Mapping[str, Any]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The Shapley values of one row and the base value.

        Args:
            row: the row's value of every feature in `names`.

        Returns:
            (phi, base): phi has shape (features, outputs), base has shape (outputs,); a model of
            one output gives outputs = 1.
        """
        value = self._coalition_values(row)  # (2**d, outputs)
        return from_coalition_values(value), value[0]

    def _coalition_values(self, row: Mapping[str, Any]) -> npt.NDArray[np.float64]:
        """v(S) for every coalition S (bit i set: feature i taken from the row)."""
        d, m = len(self.names), self.background_rows
        n_masks = 1 << d
        per_chunk = max(1, self.chunk_rows // m)
        outputs: list[npt.NDArray[np.float64]] = []
        for start in range(0, n_masks, per_chunk):
            masks = np.arange(start, min(n_masks, start + per_chunk))
            columns: dict[str, npt.NDArray[Any]] = {}
            for i, name in enumerate(self.names):
                taken = np.repeat((masks >> i) & 1 == 1, m)
                base = np.tile(np.asarray(self.background[name]), len(masks))
                columns[name] = (
                    _mixed(taken, row[name], base)
                    if base.dtype == object
                    else np.where(taken, row[name], base)
                )
            out = np.asarray(self.model(columns), dtype=np.float64)
            out = out.reshape(len(masks) * m, -1)
            outputs.append(out.reshape(len(masks), m, -1).mean(axis=1))
        return np.concatenate(outputs)


def from_coalition_values(value: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Shapley values from the value of every coalition.

    Args:
        value: shape (2**d, outputs); row S is v(S), bit i of S set when feature i is in it.

    Returns:
        shape (d, outputs): feature i's Shapley value of each output.
    """
    d = int(value.shape[0]).bit_length() - 1
    if value.shape[0] != 1 << d or d == 0:
        raise InputError(f"coalition values need 2**d rows for d >= 1 features; got {value.shape[0]}")
    masks = np.arange(1 << d)
    size = _popcount(masks)
    weights = coalition_weights(d)
    phi = np.empty((d, value.shape[1]), dtype=np.float64)
    for i in range(d):
        bit = 1 << i
        without = masks[(masks & bit) == 0]
        phi[i] = weights[size[without]] @ (value[without | bit] - value[without])
    return phi


def _mixed(taken: npt.NDArray[np.bool_], value: Any, base: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """An object column: the row's value where taken, the background's elsewhere."""
    column = base.copy()
    column[taken] = value
    return column


def _popcount(masks: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """How many bits each mask has set."""
    count = np.zeros_like(masks)
    rest = masks.copy()
    while rest.any():
        count += rest & 1
        rest >>= 1
    return count
