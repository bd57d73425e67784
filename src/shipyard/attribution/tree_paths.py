"""Fast exact path-dependent TreeSHAP for whole ensembles, in numpy, by root-to-leaf paths.

Path-dependent TreeSHAP decomposes over the root-to-leaf paths of every tree (as in GPUTreeSHAP,
Mitchell et al. 2022): a path with L unique features, each with a zero fraction z (the product of
the cover ratios of that feature's splits on the path) and a one fraction o (1 when the row
satisfies all of that feature's conditions on the path, else 0), gives feature i the share
    v * (o_i - z_i) * sum_m m!(L-1-m)!/L! * e_m(prod_{j != i} (z_j + o_j t))
of its leaf value v (e_m: the coefficient of t**m). The share depends on the row only through
which conditions it meets (an L-bit pattern), so each path gets a table (2**L, L) of shares,
computed once for every pattern. Each column's values are cut into bins by every threshold the
model uses, so a path's condition on a column is an interval of bins (plus whether missing values
pass) or, for a categorical split, a set of bins. Explaining rows bins each column once, builds
each path's pattern (from per-column code tables when they fit in memory, else slot by slot),
gathers one share per (path, feature) slot and sums the slots per input column with one
`np.add.reduceat` (slots are sorted by their column). Paths with too many unique features for a
table are computed per row (the same polynomial, vectorized over rows and paths): exact either
way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.attribution.tree_shares import pattern_table, shapley_factors

__all__ = ["Binning", "PathModel", "TreeNodes", "build_path_model"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.intp]
Bools = npt.NDArray[np.bool_]

MAX_TABLE_FEATURES = 14
"""Paths with more unique features than this are computed per row instead of tabled."""

TABLE_BUDGET = 128 * 2**20
"""The most bytes all share tables may take; paths beyond it are computed per row."""

CODE_BUDGET = 64 * 2**20
"""The most bytes the per-column code tables may take; beyond it patterns are built per slot."""

CHUNK_CELLS = 2**19
"""Rows are explained in chunks of about this many (row, slot) cells (cache-sized)."""

Condition = tuple[int, int, bool] | Bools
"""A path's condition on one column: (lo, hi, missing passes) over a numeric column's value bins
(inclusive; empty when lo > hi), or which of a categorical column's bins pass."""

_Path = tuple[list[int], list[float], list[Condition], Floats]
_Binnings = tuple["Binning | None", ...]


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
        cut: per numeric split, the index of its threshold among its column's (value bins up to
            it go left).
        missing_left: per node, whether missing values go left.
        categories: per categorical split, which bins of its column go left.
        cover: training cover per node.
        value: (nodes, outputs) leaf values, already scaled and placed on their output.
    """

    left: Ints
    right: Ints
    feature: Ints
    cut: Ints
    missing_left: Bools
    categories: dict[int, Bools]
    cover: Floats
    value: Floats


@dataclass(frozen=True)
class _Slots:
    """The conditions of some (path, feature) slots, evaluated together."""

    column: Ints
    lo: Ints
    hi: Ints
    nan_bin: Ints
    nan_ok: Bools
    cat_slots: Ints  # the slots on categorical columns
    cat_table: Bools  # (categorical slots, 257): which bins pass

    def bits(self, bins: Ints) -> Bools:
        """(rows, slots): whether each row meets each slot's condition."""
        found = np.take(bins, self.column, axis=1)
        bits = (found >= self.lo) & (found <= self.hi)
        bits |= (found == self.nan_bin) & self.nan_ok
        if len(self.cat_slots):
            rows = np.arange(len(self.cat_slots))
            bits[:, self.cat_slots] = self.cat_table[rows, found[:, self.cat_slots]]
        return bits


def _slots(columns: list[int], conditions: list[Condition], binnings: _Binnings) -> _Slots:
    n = len(columns)
    lo, hi = np.ones(n, dtype=np.intp), np.zeros(n, dtype=np.intp)
    nan_bin, nan_ok = np.full(n, -1, dtype=np.intp), np.zeros(n, dtype=bool)
    cats: list[int] = []
    table: list[Bools] = []
    for slot, (column, cond) in enumerate(zip(columns, conditions, strict=True)):
        if isinstance(cond, tuple):
            lo[slot], hi[slot], nan_ok[slot] = cond
            nan_bin[slot] = _bins_of(binnings, column) - 1
        else:
            cats.append(slot)
            table.append(cond)
    cat_table = np.array(table, dtype=bool) if table else np.zeros((0, 257), dtype=bool)
    return _Slots(
        np.array(columns, dtype=np.intp),
        lo,
        hi,
        nan_bin,
        nan_ok,
        np.array(cats, dtype=np.intp),
        cat_table,
    )


def _bins_of(binnings: _Binnings, column: int) -> int:
    binning = binnings[column]
    return 0 if binning is None else binning.n_bins


@dataclass(frozen=True)
class _Tabled:
    """The tabled paths: their shares per pattern and where each slot's share goes.

    Slots (one per path and unique feature) are sorted by where their share goes, so one
    gather and one `np.add.reduceat` explain a chunk of rows.
    """

    table: Floats  # every tabled path's (2**L, L) shares, flat
    n_paths: int
    code_tables: tuple[tuple[int, npt.NDArray[np.int32]], ...] | None  # column: (bins, paths)
    path_slots: _Slots | None  # else: the slots in path order, to build codes from
    path_weights: npt.NDArray[np.int32]  # per slot in path order, (1 << k) * L
    path_starts: Ints  # where each path's slots start (path order)
    slot_path: Ints  # per sorted slot, its path (a column of the codes)
    slot_start: Ints  # per sorted slot, its path's table offset plus its place in the path
    seg_starts: Ints  # where each run of sorted slots with the same target starts
    seg_targets: Ints  # each run's column of the (inputs * outputs) result (or input column)
    weights: Floats | None  # (sorted slots, outputs) leaf values, when not in the table

    def codes(self, bins: Ints) -> npt.NDArray[np.int32]:
        """(rows, paths): each path's pattern, times its size (its row in its table)."""
        if self.code_tables is not None:
            codes = np.zeros((bins.shape[0], self.n_paths), dtype=np.int32)
            for column, table in self.code_tables:
                codes += table[bins[:, column]]
            return codes
        assert self.path_slots is not None
        bits = self.path_slots.bits(bins).astype(np.int32) * self.path_weights
        return np.add.reduceat(bits, self.path_starts, axis=1)


@dataclass(frozen=True)
class _Fallback:
    """Paths with the same number L of unique features, computed per row."""

    zeros: Floats  # (paths, L)
    slots: _Slots  # (paths*L) in path order
    columns: Any  # (inputs*outputs, paths*L) dense array or scipy sparse matrix


@dataclass(frozen=True)
class PathModel:
    """A tree ensemble ready to be explained fast (see the module docstring).

    Attributes:
        binnings: per internal column, its bins (None: the column is never split on).
        base: (outputs,) the expected output of the trees (without the model's constant).
        n_inputs, n_outputs: input columns and outputs of the attributions.
        tabled: the paths explained from tables; fallbacks: those computed per row.
        slots: how many (path, feature) slots there are.
    """

    binnings: _Binnings
    base: Floats
    n_inputs: int
    n_outputs: int
    tabled: _Tabled | None
    fallbacks: tuple[_Fallback, ...]
    slots: int

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
            index = np.take(tabled.codes(bins), tabled.slot_path, axis=1) + tabled.slot_start
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
            ones = group.slots.bits(bins).reshape(rows, n_paths, size).astype(np.float64)
            zeros = np.broadcast_to(group.zeros, ones.shape)
            found = shapley_factors(zeros, ones).reshape(rows, n_paths * size)
            out += np.asarray(group.columns @ found.T).T


def build_path_model(
    trees: list[TreeNodes],
    binnings: _Binnings,
    columns: Ints,
    n_inputs: int,
    *,
    max_table_features: int = MAX_TABLE_FEATURES,
    code_budget: int | None = None,
) -> PathModel:
    """Enumerate every root-to-leaf path, merge each path's conditions per unique feature and
    table the shares of paths small enough.

    Args:
        trees: the ensemble's trees (values already scaled and placed on outputs).
        binnings: per internal column, its bins.
        columns: (internal columns,) the input column each internal column comes from.
        n_inputs: how many input columns the attributions have.
        max_table_features: paths with more unique features are computed per row.
        code_budget: the most bytes of per-column code tables (else patterns are built per
            slot, slower but in memory proportional to the slots); None: `CODE_BUDGET`.
    """
    budget_codes = CODE_BUDGET if code_budget is None else code_budget
    n_outputs = trees[0].value.shape[1]
    by_size: dict[int, list[_Path]] = {}
    base = np.zeros(n_outputs, dtype=np.float64)
    for tree in trees:
        for path in _paths(tree, binnings):
            base += float(np.prod(path[1])) * path[3]
            if path[0]:  # a tree that is a single leaf: all its value is in the base
                by_size.setdefault(len(path[0]), []).append(path)
    budget = TABLE_BUDGET
    tabled: list[_Path] = []
    fallbacks: list[_Fallback] = []
    for size in sorted(by_size):
        found = by_size[size]
        cost = len(found) * (2**size) * size * 8
        if size <= max_table_features and cost <= budget:
            budget -= cost
            tabled.extend(found)
            continue
        zeros = np.array([z for _, z, _, _ in found], dtype=np.float64)
        slot_columns = [f for feats, _, _, _ in found for f in feats]
        values = np.array([v for _, _, _, v in found], dtype=np.float64)
        slots = _slots(slot_columns, [c for _, _, conds, _ in found for c in conds], binnings)
        matrix = _columns(columns[slots.column], values, size, n_inputs)
        fallbacks.append(_Fallback(zeros, slots, matrix))
    return PathModel(
        binnings=binnings,
        base=base,
        n_inputs=n_inputs,
        n_outputs=n_outputs,
        tabled=_table(tabled, binnings, columns, n_outputs, budget_codes) if tabled else None,
        fallbacks=tuple(fallbacks),
        slots=sum(len(p[0]) for paths in by_size.values() for p in paths),
    )


def _table(
    paths: list[_Path], binnings: _Binnings, columns: Ints, n_outputs: int, code_budget: int
) -> _Tabled:
    """Table every path's shares for all 2**L patterns; sort the slots by their target."""
    values = np.array([v for _, _, _, v in paths], dtype=np.float64)
    scaled = bool(np.all(np.count_nonzero(values, axis=1) <= 1))
    sizes = np.array([len(f) for f, _, _, _ in paths], dtype=np.intp)
    offsets = np.concatenate([[0], np.cumsum(sizes * 2**sizes)])
    table = np.zeros(int(offsets[-1]), dtype=np.float64)
    for size in np.unique(sizes):
        chosen = np.flatnonzero(sizes == size)
        step = max(1, 2**16 // 2**size)  # paths at a time: the polynomials stay small
        for first in range(0, len(chosen), step):
            part = chosen[first : first + step]
            shares = pattern_table(np.array([paths[p][1] for p in part], dtype=np.float64))
            if scaled:
                shares *= values[part].sum(axis=1)[:, None, None]
            spans = offsets[part][:, None] + np.arange(2**size * size)
            table[spans.ravel()] = shares.reshape(-1)
    used = {f for feats, _, _, _ in paths for f in feats}
    dense = sum(_bins_of(binnings, c) for c in used) * len(paths) * 4 <= code_budget
    codes: dict[int, npt.NDArray[np.int32]] = {}
    slot_path, slot_start, slot_target, slot_weight, path_weights = [], [], [], [], []
    for p, (feats, _, conds, value) in enumerate(paths):
        size = len(feats)
        output = int(np.argmax(value != 0)) if scaled else 0
        for k, (column, cond) in enumerate(zip(feats, conds, strict=True)):
            weight = (1 << k) * size
            if dense:
                found = codes.get(column)
                if found is None:
                    found = np.zeros((_bins_of(binnings, column), len(paths)), dtype=np.int32)
                    codes[column] = found
                _add_code(found[:, p], cond, weight)
            path_weights.append(weight)
            slot_path.append(p)
            slot_start.append(int(offsets[p]) + k)
            target = int(columns[column])
            slot_target.append(target * n_outputs + output if scaled else target)
            slot_weight.append(value)
    order = np.argsort(np.array(slot_target), kind="stable")
    targets = np.array(slot_target, dtype=np.intp)[order]
    starts = np.flatnonzero(np.r_[True, targets[1:] != targets[:-1]])
    path_slots = None
    if not dense:
        all_columns = [f for feats, _, _, _ in paths for f in feats]
        path_slots = _slots(all_columns, [c for _, _, conds, _ in paths for c in conds], binnings)
    return _Tabled(
        table=table,
        n_paths=len(paths),
        code_tables=tuple(sorted(codes.items())) if dense else None,
        path_slots=path_slots,
        path_weights=np.array(path_weights, dtype=np.int32),
        path_starts=np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp),
        slot_path=np.array(slot_path, dtype=np.intp)[order],
        slot_start=np.array(slot_start, dtype=np.intp)[order],
        seg_starts=starts,
        seg_targets=targets[starts],
        weights=None if scaled else np.array(slot_weight, dtype=np.float64)[order],
    )


def _add_code(codes: npt.NDArray[np.int32], cond: Condition, weight: int) -> None:
    """Add a slot's bit (times its weight) to the bins of its column that meet it."""
    if isinstance(cond, tuple):
        lo, hi, nan_ok = cond
        codes[lo : hi + 1] += weight
        if nan_ok:
            codes[-1] += weight
    else:
        codes += cond.astype(np.int32) * weight


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


def _paths(tree: TreeNodes, binnings: _Binnings) -> list[_Path]:
    """Every root-to-leaf path: its unique columns (first split first), their zero fractions,
    their merged conditions and the leaf's value."""
    found: list[_Path] = []
    stack: list[tuple[int, dict[int, tuple[float, Condition]]]] = [(0, {})]
    while stack:
        node, conditions = stack.pop()
        left = int(tree.left[node])
        if left < 0:
            feats = list(conditions)
            zeros = [conditions[f][0] for f in feats]
            found.append((feats, zeros, [conditions[f][1] for f in feats], tree.value[node]))
            continue
        right = int(tree.right[node])
        column = int(tree.feature[node])
        cover = float(tree.cover[node])
        missing = bool(tree.missing_left[node])
        split = tree.categories.get(node)
        if split is None:
            cut, top = int(tree.cut[node]), _bins_of(binnings, column) - 2
            sides: list[Condition] = [(0, cut, missing), (cut + 1, top, not missing)]
        else:
            sides = [split, ~split]
        for child, meets in zip((left, right), sides, strict=True):
            share = float(tree.cover[child]) / cover if cover > 0 else 0.0
            zero, cond = conditions.get(column, (1.0, None))
            grown = dict(conditions)
            grown[column] = (zero * share, meets if cond is None else _merge(cond, meets))
            stack.append((child, grown))
    return found


def _merge(one: Condition, other: Condition) -> Condition:
    """Both conditions at once."""
    if isinstance(one, tuple) and isinstance(other, tuple):
        return (max(one[0], other[0]), min(one[1], other[1]), one[2] and other[2])
    if isinstance(one, tuple) or isinstance(other, tuple):
        raise TypeError("a column cannot be split both by thresholds and by categories")
    return one & other
