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

__all__ = [
    "MAX_EXACT_FEATURES",
    "ExactShapley",
    "Oracle",
    "all_coalitions",
    "coalition_values",
    "coalition_weights",
    "from_coalition_values",
]

MAX_EXACT_FEATURES = 12
"""The most features exact model-agnostic Shapley values are computed for (2**12 coalitions)."""

Columns = Mapping[str, npt.NDArray[Any]]
Model = Callable[[Columns], npt.NDArray[np.float64]]
"""Columns of equal length in, one row of outputs per row out: shape (rows,) or (rows, outputs)."""
Oracle = Callable[[Columns, npt.NDArray[np.bool_]], npt.NDArray[np.float64]]
"""(rows, coalitions) -> v: rows holds n rows (one array per feature), coalitions is a (C, d)
boolean matrix (True: the feature is taken from the row); v has shape (n, C, outputs)."""


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
        oracle: computes coalition values instead of `model` (a faster exact forward pass of a
            known model); None mixes rows with the background and calls `model`.

    Raises:
        InputError: no features, more than `MAX_EXACT_FEATURES`, an empty background, or a
            feature missing from it.
    """

    model: Model
    background: Columns
    names: Sequence[str]
    chunk_rows: int = 262_144
    oracle: Oracle | None = None

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

    def values_of_rows(self, rows: Columns) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The Shapley values of many rows, their coalitions predicted together.

        Args:
            rows: the rows' values, one array per feature in `names` (all of one length).

        Returns:
            (phi, empty): phi has shape (rows, features, outputs); empty, (rows, outputs), is
            each row's v({}) (the base value, the same on every row up to rounding).
        """
        value = self._all_values(rows)  # (rows, 2**d, outputs)
        return from_coalition_values(value), value[:, 0]

    def _coalition_values(self, row: Mapping[str, Any]) -> npt.NDArray[np.float64]:
        """v(S) for every coalition S (bit i set: feature i taken from the row)."""
        rows = {n: _one(row[n], self.background[n]) for n in self.names}
        value: npt.NDArray[np.float64] = self._all_values(rows)[0]
        return value

    def _all_values(self, rows: Columns) -> npt.NDArray[np.float64]:
        coalitions = all_coalitions(len(self.names))
        if self.oracle is not None:
            return self.oracle(rows, coalitions)
        return coalition_values(
            self.model, self.background, self.names, rows, coalitions, chunk_rows=self.chunk_rows
        )


def all_coalitions(n_features: int) -> npt.NDArray[np.bool_]:
    """Every coalition of d features as a (2**d, d) boolean matrix: row S has bit i of S in column i."""
    masks = np.arange(1 << n_features)
    return np.asarray((masks[:, None] >> np.arange(n_features)) & 1 == 1)


def coalition_values(
    model: Model,
    background: Columns,
    names: Sequence[str],
    rows: Columns,
    coalitions: npt.NDArray[np.bool_],
    *,
    chunk_rows: int = 262_144,
) -> npt.NDArray[np.float64]:
    """v(S) = mean over the background of the model with S's features from the row, for many
    rows and coalitions; every (row, coalition) pair is predicted in as few calls as `chunk_rows`
    allows.

    Args:
        model: the model as a function of columns.
        background: one array per feature, all of one length m.
        names: the features, in the order of the coalitions' columns.
        rows: n rows, one array per feature.
        coalitions: (C, d) booleans; True takes the feature from the row.
        chunk_rows: the most synthetic rows (pairs x m) in one call of `model`.

    Returns:
        shape (n, C, outputs).
    """
    m = len(background[names[0]])
    n, c = len(rows[names[0]]), len(coalitions)
    per_chunk = max(1, chunk_rows // m)
    outputs: list[npt.NDArray[np.float64]] = []
    for start in range(0, n * c, per_chunk):
        pairs = np.arange(start, min(n * c, start + per_chunk))
        row_of, coalition_of = pairs // c, pairs % c
        columns: dict[str, npt.NDArray[Any]] = {}
        for i, name in enumerate(names):
            base = np.asarray(background[name])
            mine = np.asarray(rows[name])[row_of]
            # One broadcast per feature: (pairs, 1) against (1, m); object columns stay objects.
            columns[name] = np.where(
                coalitions[coalition_of, i][:, None], mine[:, None], base[None, :]
            ).ravel()
        out = np.asarray(model(columns), dtype=np.float64).reshape(len(pairs) * m, -1)
        outputs.append(out.reshape(len(pairs), m, -1).mean(axis=1))
    return np.concatenate(outputs).reshape(n, c, -1)


def from_coalition_values(value: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Shapley values from the value of every coalition.

    Args:
        value: shape (2**d, outputs), or (rows, 2**d, outputs) for many rows; entry S is v(S),
            bit i of S set when feature i is in it.

    Returns:
        shape (d, outputs) (or (rows, d, outputs)): feature i's Shapley value of each output.
    """
    n_masks = int(value.shape[-2])
    d = n_masks.bit_length() - 1
    if n_masks != 1 << d or d == 0:
        raise InputError(f"coalition values need 2**d rows for d >= 1 features; got {n_masks}")
    masks = np.arange(1 << d)
    size = _popcount(masks)
    weights = coalition_weights(d)
    phi = np.empty((*value.shape[:-2], d, value.shape[-1]), dtype=np.float64)
    for i in range(d):
        bit = 1 << i
        without = masks[(masks & bit) == 0]
        gain = value[..., without | bit, :] - value[..., without, :]
        phi[..., i, :] = np.einsum("w,...wk->...k", weights[size[without]], gain)
    return phi


def _one(value: Any, like: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """One value as a one-element array of the background column's kind (objects stay objects)."""
    if np.asarray(like).dtype != object:
        return np.asarray([value])
    column = np.empty(1, dtype=object)
    column[0] = value
    return column


def _popcount(masks: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """How many bits each mask has set."""
    count = np.zeros_like(masks)
    rest = masks.copy()
    while rest.any():
        count += rest & 1
        rest >>= 1
    return count
