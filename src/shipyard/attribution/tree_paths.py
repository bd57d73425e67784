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

MAX_TABLE_FEATURES = 12
"""Paths with more unique features than this are computed per row instead of tabled."""

TABLE_BUDGET = 256 * 2**20
"""The most bytes all tables may take; paths beyond it are computed per row."""

CHUNK_CELLS = 2**21
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
class _Group:
    """Paths with the same number of unique features, tabled or computed per row."""

    size: int
    zeros: Floats  # (paths, size)
    slot_bins: Ints  # (paths*size,) internal column per slot
    cond_index: Ints  # (paths*size,) offset of each slot's condition in the flat condition table
    columns: Any  # (paths*size, inputs*outputs) dense array or scipy sparse matrix
    table: Floats | None  # (sum 2**size, size) shares per pattern, or None: computed per row
    code_start: int  # first of this group's paths among all tabled paths
    offsets: Ints | None  # (paths,) row offset of each path's table


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
    groups: tuple[_Group, ...]
    code_tables: tuple[tuple[int, npt.NDArray[Any]], ...]  # (column, (bins, tabled paths) codes)
    conditions: Bools
    n_tabled: int
    code_dtype: Any
    slots: int = field(default=0)

    def attribute(self, matrix: Floats) -> Floats:
        """(rows, inputs, outputs) shares of the rows of the internal matrix."""
        rows = matrix.shape[0]
        out = np.zeros((rows, self.n_inputs * self.n_outputs), dtype=np.float64)
        step = max(1, CHUNK_CELLS // max(1, self.slots))
        for start in range(0, rows, step):
            stop = min(rows, start + step)
            out[start:stop] = self._chunk(matrix[start:stop])
        return out.reshape(rows, self.n_inputs, self.n_outputs)

    def _chunk(self, matrix: Floats) -> Floats:
        rows = matrix.shape[0]
        bins = np.zeros((rows, len(self.binnings)), dtype=np.intp)
        for column, binning in enumerate(self.binnings):
            if binning is not None:
                bins[:, column] = binning.bins(matrix[:, column])
        codes = np.zeros((rows, self.n_tabled), dtype=self.code_dtype)
        for column, table in self.code_tables:
            codes += table[bins[:, column]]
        total = np.zeros((rows, self.n_inputs * self.n_outputs), dtype=np.float64)
        for group in self.groups:
            n_paths = group.zeros.shape[0]
            if group.table is not None and group.offsets is not None:
                stop = group.code_start + n_paths
                index = codes[:, group.code_start : stop] + group.offsets
                shares = group.table[index].reshape(rows, n_paths * group.size)
            else:
                ones = self.conditions[group.cond_index + bins[:, group.slot_bins]]
                ones = ones.reshape(rows, n_paths, group.size).astype(np.float64)
                zeros = np.broadcast_to(group.zeros, ones.shape)
                shares = shapley_factors(zeros, ones).reshape(rows, n_paths * group.size)
            total += np.asarray(group.columns @ shares.T).T
        return total


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
    poly = np.zeros(lead + (size + 1,), dtype=np.float64)
    poly[..., 0] = 1.0
    for j in range(size):
        z = zeros[..., j : j + 1]
        o = ones[..., j : j + 1]
        shifted = np.zeros_like(poly)
        shifted[..., 1:] = poly[..., :-1]
        poly = poly * z + shifted * o
    weights = np.array(
        [factorial(m) * factorial(size - 1 - m) / factorial(size) for m in range(size)]
    )
    # divide the product by each feature's own factor: by (t + z) where o = 1 (synthetic
    # division from the top, stable as z <= 1), by z where o = 0
    z = zeros[..., :, None]
    o = ones[..., :, None] > 0.5
    full = poly[..., None, :]
    quotient = np.zeros(lead + (size, size), dtype=np.float64)
    carry = full[..., size]
    for m in range(size - 1, -1, -1):
        quotient[..., m] = carry
        carry = full[..., m] - z[..., 0] * carry
    with np.errstate(divide="ignore", invalid="ignore"):
        by_zero = full[..., :size] / np.where(z > 0, z, 1.0)
    quotient = np.where(o, quotient, by_zero)
    return (ones - zeros) * (quotient @ weights)


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
    bin_offsets = np.zeros(len(binnings) + 1, dtype=np.intp)
    for column, binning in enumerate(binnings):
        bin_offsets[column + 1] = bin_offsets[column] + (0 if binning is None else binning.n_bins)
    paths: dict[int, list[tuple[list[int], list[float], list[Bools], Floats]]] = {}
    base = np.zeros(n_outputs, dtype=np.float64)
    for tree in trees:
        for feats, zeros, conds, value in _paths(tree):
            paths.setdefault(len(feats), []).append((feats, zeros, conds, value))
            base += float(np.prod(zeros)) * value
    budget = TABLE_BUDGET
    plans: list[tuple[int, bool, list[tuple[list[int], list[float], list[Bools], Floats]]]] = []
    for size in sorted(paths):
        found = paths[size]
        cost = len(found) * (2**size) * size * 8
        tabled = 0 < size <= max_table_features and cost <= budget
        budget -= cost if tabled else 0
        plans.append((size, tabled, found))
    n_tabled = sum(len(found) for _, tabled, found in plans if tabled)
    code_dtype = np.int16 if max_table_features < 15 else np.int32
    code_tables: dict[int, npt.NDArray[Any]] = {}
    all_conditions: list[Bools] = []
    n_conditions = 0
    groups: list[_Group] = []
    code_start = 0
    for size, tabled, found in plans:
        if size == 0:
            continue  # a tree that is a single leaf: its value is all in the base
        zeros = np.array([z for _, z, _, _ in found], dtype=np.float64)
        feats = np.array([f for f, _, _, _ in found], dtype=np.intp)
        values = np.array([v for _, _, _, v in found], dtype=np.float64)
        slot_bins = feats.ravel()
        cond_index = np.zeros(len(slot_bins), dtype=np.intp)
        for slot, cond in enumerate(c for _, _, conds, _ in found for c in conds):
            cond_index[slot] = n_conditions
            all_conditions.append(cond)
            n_conditions += len(cond)
        matrix = _columns(columns[slot_bins], values, size, n_inputs)
        if tabled:
            patterns = (np.arange(2**size)[:, None] >> np.arange(size)) & 1
            ones = np.broadcast_to(patterns, (len(found), 2**size, size)).astype(np.float64)
            table = shapley_factors(np.broadcast_to(zeros[:, None, :], ones.shape), ones)
            offsets = np.arange(len(found), dtype=np.intp) * 2**size
            for p, (pfeats, _, conds, _) in enumerate(found):
                for k, (column, cond) in enumerate(zip(pfeats, conds, strict=True)):
                    codes = code_tables.get(column)
                    if codes is None:
                        codes = np.zeros((len(cond), n_tabled), dtype=code_dtype)
                        code_tables[column] = codes
                    codes[:, code_start + p] += cond.astype(code_dtype) << k
            groups.append(
                _Group(size, zeros, slot_bins, cond_index, matrix,
                       table.reshape(-1, size), code_start, offsets)
            )
            code_start += len(found)
        else:
            groups.append(_Group(size, zeros, slot_bins, cond_index, matrix, None, 0, None))
    conditions = np.concatenate(all_conditions) if all_conditions else np.zeros(0, dtype=bool)
    return PathModel(
        binnings=binnings,
        base=base,
        n_inputs=n_inputs,
        n_outputs=n_outputs,
        groups=tuple(groups),
        code_tables=tuple(sorted(code_tables.items())),
        conditions=conditions,
        n_tabled=n_tabled,
        code_dtype=code_dtype,
        slots=sum(g.zeros.size for g in groups),
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


def _paths(tree: TreeNodes) -> list[tuple[list[int], list[float], list[Bools], Floats]]:
    """Every root-to-leaf path: its unique columns (first split first), their zero fractions,
    their merged conditions (over the column's bins) and the leaf's value."""
    found: list[tuple[list[int], list[float], list[Bools], Floats]] = []
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
