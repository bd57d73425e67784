"""Fast exact path-dependent TreeSHAP for whole ensembles, in numpy, by root-to-leaf paths.

Path-dependent TreeSHAP decomposes over the root-to-leaf paths of every tree (as in GPUTreeSHAP,
Mitchell et al. 2022): a path with L unique features, each with a zero fraction z (the product of
the cover ratios of that feature's splits on the path) and a one fraction o (1 when the row
satisfies all of that feature's conditions on the path, else 0), gives feature i the share
    v * (o_i - z_i) * sum_m m!(L-1-m)!/L! * e_m(prod_{j != i} (z_j + o_j t))
of its leaf value v (e_m: the coefficient of t**m). The share depends on the row only through
which conditions it meets (an L-bit pattern), so each path gets a table (2**L, L) of shares,
computed once for every pattern; explaining rows then evaluates the conditions (each feature's
value is cut into bins by every threshold the model uses, so one lookup per feature gives every
path's bit), gathers each path's row of its table and adds the shares onto the input columns with
one matrix product. Paths with too many unique features for a table are computed per row (the
same polynomial, vectorized over rows and paths): exact either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import factorial
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Binning", "PathModel", "TreeNodes", "build_path_model", "shapley_factors"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.intp]
Bools = npt.NDArray[np.bool_]

MAX_TABLE_FEATURES = 14
"""Paths with more unique features than this are computed per row instead of tabled."""

TABLE_BUDGET = 128 * 2**20
"""The most bytes all tables may take; paths beyond it are computed per row."""

CHUNK_CELLS = 2**19
"""Rows are explained in chunks of about this many (row, path slot) cells, to bound memory."""


@dataclass(frozen=True)
class Binning:
    """How one internal column's values are cut into bins every split of the model respects.

    Attributes:
        thresholds: a numeric column's sorted thresholds (bins: 0..m by value, m+1 for NaN);
            None for a categorical column (bins 0..255 by category code, 256 for missing).
    """

    thresholds: Floats | None

    @property
    def n_bins(self) -> int:
        """How many bins the column has."""
        return 257 if self.thresholds is None else len(self.thresholds) + 2

    def bins(self, column: Floats) -> Ints:
        """Each value's bin."""
        if self.thresholds is None:
            # scikit-learn's HGB: NaN and negative values are missing; others are cast to uint8
            # (C truncation, so a code above 255 wraps like the model's own cast does)
            missing = np.isnan(column) | (column < 0)
            safe = np.where(missing | (column >= 2**31), 0.0, column)
            codes = safe.astype(np.int64) & 255
            return np.where(missing, 256, codes).astype(np.intp)
        found = np.searchsorted(self.thresholds, column, side="left")
        return np.where(np.isnan(column), len(self.thresholds) + 1, found).astype(np.intp)


@dataclass(frozen=True)
class TreeNodes:
    """One tree in a model-neutral form.

    Attributes:
        left, right: children per node (-1 for a leaf).
        feature: internal column split on per node.
        goes_left: per node, a function of its column's bins (True: to the left child); built
            by the adapter from thresholds, missing-value directions and category sets.
        cover: training cover per node.
        value: (nodes, outputs) leaf values, already scaled and placed on their output.
    """

    left: Ints
    right: Ints
    feature: Ints
    goes_left: dict[int, Bools]
    cover: Floats
    value: Floats


@dataclass(frozen=True)
class _Tabled:
    """The tabled paths: their shares per pattern and where each slot's share goes.

    Slots (one per path and unique feature) are sorted by where their share goes, so one
    gather and one `np.add.reduceat` explain a chunk of rows.
    """

    table: Floats  # every tabled path's (2**L, L) shares, flat
    code_tables: tuple[tuple[int, npt.NDArray[np.int32]], ...]  # column -> (bins, paths) codes
    n_paths: int
    slot_path: Ints  # per slot, its path (a column of the codes)
    slot_start: Ints  # per slot, its path's table offset plus its position in the path
    seg_starts: Ints  # where each run of slots with the same target starts
    seg_targets: Ints  # each run's column of the (inputs * outputs) result (or input column)
    weights: Floats | None  # (slots, outputs) leaf values, when not already in the table


@dataclass(frozen=True)
class _Fallback:
    """Paths with the same number L of unique features, computed per row."""

    zeros: Floats  # (paths, L)
    slot_bins: Ints  # (paths*L,) internal column per slot
    cond_index: Ints  # (paths*L,) offset of each slot's condition in the flat condition table
    columns: Any  # (inputs*outputs, paths*L) dense array or scipy sparse matrix


@dataclass(frozen=True)
class PathModel:
    """A tree ensemble ready to be explained fast (see the module docstring).

    Attributes:
        binnings: per internal column, its bins (None: the column is never split on).
        base: (outputs,) the expected output of the trees (without the model's constant).
        n_inputs, n_outputs: input columns and outputs of the attributions.
    """

    binnings: tuple[Binning | None, ...]
    base: Floats
    n_inputs: int
    n_outputs: int
    tabled: _Tabled | None
    fallbacks: tuple[_Fallback, ...]
    conditions: Bools
    slots: int = field(default=0)

    def attribute(self, matrix: Floats) -> Floats:
        """(rows, inputs, outputs) shares of the rows of the internal matrix."""
        rows = matrix.shape[0]
        out = np.zeros((rows, self.n_inputs * self.n_outputs), dtype=np.float64)
        step = max(1, CHUNK_CELLS // max(1, self.slots))
        for start in range(0, rows, step):
            stop = min(rows, start + step)
            self._chunk(matrix[start:stop], out[start:stop])
        return out.reshape(rows, self.n_inputs, self.n_outputs)

    def _bins(self, matrix: Floats) -> Ints:
        rows, width = matrix.shape
        bins = np.zeros((rows, width), dtype=np.intp)
        nan_bin = np.zeros(width, dtype=np.intp)
        for column, binning in enumerate(self.binnings):
            if binning is not None and binning.thresholds is not None:
                bins[:, column] = binning.thresholds.searchsorted(matrix[:, column])
                nan_bin[column] = len(binning.thresholds) + 1
        bins = np.where(np.isnan(matrix), nan_bin, bins)
        for column, binning in enumerate(self.binnings):
            if binning is not None and binning.thresholds is None:
                bins[:, column] = binning.bins(matrix[:, column])
        return bins

    def _chunk(self, matrix: Floats, out: Floats) -> None:
        rows = matrix.shape[0]
        bins = self._bins(matrix)
        tabled = self.tabled
        if tabled is not None:
            codes = np.zeros((rows, tabled.n_paths), dtype=np.int32)
            for column, table in tabled.code_tables:
                codes += table[bins[:, column]]
            index = np.take(codes, tabled.slot_path, axis=1) + tabled.slot_start
            shares = np.take(tabled.table, index)
            if tabled.weights is None:
                out[:, tabled.seg_targets] += np.add.reduceat(shares, tabled.seg_starts, axis=1)
            else:
                for k in range(self.n_outputs):
                    weighted = shares * tabled.weights[:, k]
                    summed = np.add.reduceat(weighted, tabled.seg_starts, axis=1)
                    out[:, tabled.seg_targets * self.n_outputs + k] += summed
        for group in self.fallbacks:
            n_paths, size = group.zeros.shape
            ones = self.conditions[group.cond_index + bins[:, group.slot_bins]]
            ones = ones.reshape(rows, n_paths, size).astype(np.float64)
            zeros = np.broadcast_to(group.zeros, ones.shape)
            found = shapley_factors(zeros, ones).reshape(rows, n_paths * size)
            out += np.asarray(group.columns @ found.T).T


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


def build_path_model(
    trees: list[TreeNodes],
    binnings: tuple[Binning | None, ...],
    columns: Ints,
    n_inputs: int,
    *,
    max_table_features: int = MAX_TABLE_FEATURES,
) -> PathModel:
    """Enumerate every root-to-leaf path, merge each path's conditions per unique feature and
    table the shares of paths small enough.

    Args:
        trees: the ensemble's trees (values already scaled and placed on outputs).
        binnings: per internal column, its bins.
        columns: (internal columns,) the input column each internal column comes from.
        n_inputs: how many input columns the attributions have.
        max_table_features: paths with more unique features are computed per row.
    """
    n_outputs = trees[0].value.shape[1]
    by_size: dict[int, list[_Path]] = {}
    base = np.zeros(n_outputs, dtype=np.float64)
    for tree in trees:
        for path in _paths(tree):
            base += float(np.prod(path[1])) * path[3]
            if path[0]:  # a tree that is a single leaf: all its value is in the base
                by_size.setdefault(len(path[0]), []).append(path)
    budget = TABLE_BUDGET
    tabled: list[_Path] = []
    fallbacks: list[_Fallback] = []
    all_conditions: list[Bools] = []
    for size in sorted(by_size):
        found = by_size[size]
        cost = len(found) * (2**size) * size * 8
        if size <= max_table_features and cost <= budget:
            budget -= cost
            tabled.extend(found)
            continue
        zeros = np.array([z for _, z, _, _ in found], dtype=np.float64)
        slot_bins = np.array([f for f, _, _, _ in found], dtype=np.intp).ravel()
        values = np.array([v for _, _, _, v in found], dtype=np.float64)
        cond_index = np.zeros(len(slot_bins), dtype=np.intp)
        n_conditions = sum(len(c) for c in all_conditions)
        for slot, cond in enumerate(c for _, _, conds, _ in found for c in conds):
            cond_index[slot] = n_conditions
            all_conditions.append(cond)
            n_conditions += len(cond)
        matrix = _columns(columns[slot_bins], values, size, n_inputs)
        fallbacks.append(_Fallback(zeros, slot_bins, cond_index, matrix))
    conditions = np.concatenate(all_conditions) if all_conditions else np.zeros(0, dtype=bool)
    return PathModel(
        binnings=binnings,
        base=base,
        n_inputs=n_inputs,
        n_outputs=n_outputs,
        tabled=_table(tabled, binnings, columns, n_outputs) if tabled else None,
        fallbacks=tuple(fallbacks),
        conditions=conditions,
        slots=sum(len(p[0]) for paths in by_size.values() for p in paths),
    )


_Path = tuple[list[int], list[float], list[Bools], Floats]


def _table(
    paths: list[_Path], binnings: tuple[Binning | None, ...], columns: Ints, n_outputs: int
) -> _Tabled:
    """Table every path's shares for all 2**L patterns; sort the slots by their target."""
    values = np.array([v for _, _, _, v in paths], dtype=np.float64)
    scaled = bool(np.all(np.count_nonzero(values, axis=1) <= 1))
    sizes = np.array([len(f) for f, _, _, _ in paths], dtype=np.intp)
    offsets = np.concatenate([[0], np.cumsum(sizes * 2**sizes)])
    table = np.zeros(int(offsets[-1]), dtype=np.float64)
    for size in np.unique(sizes):
        chosen = np.flatnonzero(sizes == size)
        zeros = np.array([paths[p][1] for p in chosen], dtype=np.float64)
        patterns = ((np.arange(2**size)[:, None] >> np.arange(size)) & 1).astype(np.float64)
        ones = np.broadcast_to(patterns, (len(chosen), 2**size, size))
        shares = shapley_factors(np.broadcast_to(zeros[:, None, :], ones.shape), ones)
        if scaled:
            shares *= values[chosen].sum(axis=1)[:, None, None]
        spans = offsets[chosen][:, None] + np.arange(2**size * size)
        table[spans.ravel()] = shares.reshape(-1)
    codes: dict[int, npt.NDArray[np.int32]] = {}
    slot_path, slot_start, slot_target, slot_weight = [], [], [], []
    for p, (feats, _, conds, value) in enumerate(paths):
        size = len(feats)
        output = int(np.argmax(value != 0)) if scaled else 0
        for k, (column, cond) in enumerate(zip(feats, conds, strict=True)):
            found = codes.get(column)
            if found is None:
                bins = binnings[column]
                assert bins is not None
                found = codes[column] = np.zeros((bins.n_bins, len(paths)), dtype=np.int32)
            found[:, p] += cond.astype(np.int32) * ((1 << k) * size)
            slot_path.append(p)
            slot_start.append(int(offsets[p]) + k)
            target = int(columns[column])
            slot_target.append(target * n_outputs + output if scaled else target)
            slot_weight.append(value)
    order = np.argsort(np.array(slot_target), kind="stable")
    targets = np.array(slot_target, dtype=np.intp)[order]
    starts = np.flatnonzero(np.r_[True, targets[1:] != targets[:-1]])
    return _Tabled(
        table=table,
        code_tables=tuple(sorted(codes.items())),
        n_paths=len(paths),
        slot_path=np.array(slot_path, dtype=np.intp)[order],
        slot_start=np.array(slot_start, dtype=np.intp)[order],
        seg_starts=starts,
        seg_targets=targets[starts],
        weights=None if scaled else np.array(slot_weight, dtype=np.float64)[order],
    )


def _columns(slot_columns: Ints, values: Floats, size: int, n_inputs: int) -> Any:
    """The (slots, inputs*outputs) matrix sending each slot's share, times its path's leaf
    value, onto its input column; dense when small, else sparse."""
    n_slots = len(slot_columns)
    n_outputs = values.shape[1]
    per_slot = np.repeat(values, size, axis=0)  # (slots, outputs)
    if n_slots * n_inputs * n_outputs * 8 <= 32 * 2**20:
        dense = np.zeros((n_slots, n_inputs, n_outputs), dtype=np.float64)
        dense[np.arange(n_slots), slot_columns] = per_slot
        return dense.reshape(n_slots, n_inputs * n_outputs).T.copy()
    from scipy import sparse

    rows = np.repeat(np.arange(n_slots), n_outputs)
    cols = (slot_columns[:, None] * n_outputs + np.arange(n_outputs)).ravel()
    shape = (n_slots, n_inputs * n_outputs)
    return sparse.csr_matrix((per_slot.ravel(), (rows, cols)), shape=shape).T.tocsr()


def _paths(tree: TreeNodes) -> list[_Path]:
    """Every root-to-leaf path: its unique columns (first split first), their zero fractions,
    their merged conditions (over the column's bins) and the leaf's value."""
    found: list[_Path] = []
    stack: list[tuple[int, dict[int, tuple[float, Bools]]]] = [(0, {})]
    while stack:
        node, conditions = stack.pop()
        left = int(tree.left[node])
        if left < 0:
            feats = list(conditions)
            found.append(
                (
                    feats,
                    [conditions[f][0] for f in feats],
                    [conditions[f][1] for f in feats],
                    tree.value[node],
                )
            )
            continue
        right = int(tree.right[node])
        column = int(tree.feature[node])
        to_left = tree.goes_left[node]
        cover = float(tree.cover[node])
        for child, meets in ((left, to_left), (right, ~to_left)):
            zero, cond = conditions.get(column, (1.0, np.ones(len(meets), dtype=bool)))
            share = float(tree.cover[child]) / cover if cover > 0 else 0.0
            grown = dict(conditions)
            grown[column] = (zero * share, cond & meets)
            stack.append((child, grown))
    return found
