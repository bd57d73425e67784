"""The statistics of drift, each checked in the tests against scipy or its textbook form.

Drift judgement (thresholds, levels, the dataset verdict) is in `drift.py`; this module only
computes: PSI on reference-quantile bins, KS and Wasserstein exactly on samples or from profiles
on the same edges, and the chi-square test of homogeneity.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shipyard.core.batch import Array
from shipyard.core.profile import NumericProfile, numeric

__all__ = [
    "PSI_EPSILON",
    "exact_ks_wasserstein",
    "grid_ks",
    "grid_wasserstein",
    "homogeneity",
    "ks_pvalue",
    "present",
    "psi",
    "psi_bins",
    "unseen_pvalue",
]

#: The share an empty bin counts as in the PSI (either side), so that ln(0) never arises.
PSI_EPSILON = 1e-4
_EXACT_P_ROWS = 10_000  # up to this many rows a side, scipy's exact p-value is cheap


def psi_bins(reference: NumericProfile, bins: int = 10) -> tuple[Array, Array]:
    """The PSI's reference-quantile bins, from the profile's fine edges.

    Returns:
        (edges, groups): the inner edges of the `bins` bins (bin i holds edges[i-1] <= x <
        edges[i]), and for each fine bin of the profile the PSI bin it falls in.
    """
    counts = np.asarray(reference.counts, dtype=np.float64)
    fine = np.asarray(reference.edges, dtype=np.float64)
    if len(fine) == 0 or counts.sum() == 0:
        return fine[:0], np.zeros(len(counts), dtype=np.int64)
    below = np.cumsum(counts)[:-1] / counts.sum()  # share of the reference below each fine edge
    targets = np.arange(1, bins) / bins
    picks = np.unique(np.abs(below[None, :] - targets[:, None]).argmin(axis=1))
    edges = fine[picks]
    groups = np.searchsorted(picks, np.arange(len(counts)), side="left")
    return edges, groups


def psi(expected: Array, actual: Array, epsilon: float = PSI_EPSILON) -> float:
    """The population stability index of two share vectors on the same bins (textbook form)."""
    e = np.maximum(expected, epsilon)
    a = np.maximum(actual, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def exact_ks_wasserstein(a: Array, b: Array) -> tuple[float, float, float]:
    """The two-sample KS statistic, its p-value and the Wasserstein-1 distance, exactly.

    The same numbers as `scipy.stats.ks_2samp` (two-sided) and `scipy.stats.wasserstein_distance`,
    from one search of one sorted sample into the other and linear passes, in integers where it
    matters.

    KS: between two values of `a`, F_a is flat and F_b only rises, so sup(F_b - F_a) is reached
    just below some value of `a`; likewise sup(F_a - F_b) just below some value of `b`. Both
    need only the counts strictly below each value, which the one search gives.
    Wasserstein: the integral of |Q_a - Q_b| over the quantile levels i/n and j/m.
    """
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return float("nan"), float("nan"), float("nan")
    a, b = np.sort(a), np.sort(b)
    below_a = np.searchsorted(b, a, side="left")  # b's values strictly below each value of a
    first_a = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])  # the first of each distinct value
    first_b = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    equal = (a == b[np.minimum(below_a, m - 1)]) & (below_a < m)  # a values that b holds too
    # a's values at most b_j (j the first of its value), less those equal to it: strictly below.
    at_most = np.bincount(below_a, minlength=m + 1).cumsum()
    below_b = at_most[first_b] - np.bincount(below_a[equal], minlength=m + 1)[first_b]
    gaps = (
        below_a[first_a].astype(np.int64) * n - first_a.astype(np.int64) * m,  # (F_b - F_a) * n * m
        below_b.astype(np.int64) * m - first_b.astype(np.int64) * n,  # (F_a - F_b) * n * m
    )
    statistic = max(0, *(int(g.max()) for g in gaps)) / (n * m)
    if n == m:
        wasserstein = float(np.abs(a - b).mean())
    else:  # the levels i/n and j/m in units of 1/(n*m); a stable sort of two runs is one merge
        levels = np.sort(
            np.r_[np.arange(1, n + 1, dtype=np.int64) * m, np.arange(1, m + 1, dtype=np.int64) * n],
            kind="stable",
        )
        levels = levels[np.r_[levels[1:] != levels[:-1], True]]
        width = np.diff(levels, prepend=0)
        wasserstein = float(np.dot(width, np.abs(a[(levels - 1) // m] - b[(levels - 1) // n]))) / (n * m)
    p = float(_stats().ks_2samp(a, b).pvalue) if max(n, m) <= _EXACT_P_ROWS else ks_pvalue(statistic, n, m)
    return statistic, p, wasserstein


def ks_pvalue(statistic: float, n: float, m: float) -> float:
    """The two-sided KS p-value for large samples.

    Up to an effective size of 10,000 it is scipy's `kstwo` of that size, as `ks_2samp`'s
    asymptotic method computes it; beyond, the limiting Kolmogorov distribution, within about
    half a percent of it for p-values above 0.01 (a few percent for tiny ones), which takes
    microseconds instead of up to a second.
    """
    size = n * m / (n + m)
    if size <= _EXACT_P_ROWS:
        return float(np.clip(_stats().kstwo.sf(statistic, round(size)), 0.0, 1.0))
    return float(np.clip(_stats().kstwobign.sf(statistic * math.sqrt(size)), 0.0, 1.0))


def grid_ks(r: Array, c: Array) -> tuple[float, float]:
    """KS on the fine grid: the statistic at the edges, and the most it can be between them."""
    fr = np.r_[0.0, np.cumsum(r) / r.sum()]  # share below each fine bin's lower end ... upper end
    fc = np.r_[0.0, np.cumsum(c) / c.sum()]
    fr[-1] = fc[-1] = 1.0
    low = float(np.max(np.abs(fr[1:-1] - fc[1:-1]))) if len(fr) > 2 else 0.0
    high = float(max(np.max(fc[1:] - fr[:-1]), np.max(fr[1:] - fc[:-1])))
    return low, max(low, high)


def grid_wasserstein(ref: NumericProfile, cur: NumericProfile) -> float:
    """The Wasserstein-1 distance of two histograms on the same edges, uniform within each bin."""
    if ref.min is None or cur.min is None or ref.max is None or cur.max is None:
        return float("nan")
    edges = np.asarray(ref.edges, dtype=np.float64)
    rx, ry = _cdf(ref, edges)
    cx, cy = _cdf(cur, edges)
    points = np.unique(np.r_[rx, cx])  # every corner of both piecewise-linear CDFs
    gap = np.interp(points, rx, ry, left=0.0, right=1.0) - np.interp(points, cx, cy, left=0.0, right=1.0)
    return float(_area(points, gap))


def _cdf(p: NumericProfile, edges: Array) -> tuple[Array, Array]:
    assert p.min is not None
    assert p.max is not None
    counts = np.asarray(p.counts, dtype=np.float64)
    lows = np.r_[p.min, edges]
    highs = np.r_[edges, p.max]
    if len(edges) and p.tail_sums is not None:
        # The outer bins reach to the data's extremes; spread their mass evenly over a range
        # with the bin's own mean instead, which follows a tail far more closely.
        if counts[0] > 0:
            lows[0] = max(p.min, 2.0 * p.tail_sums[0] / counts[0] - edges[0])
        if counts[-1] > 0:
            highs[-1] = min(p.max, 2.0 * p.tail_sums[1] / counts[-1] - edges[-1])
    # A bin's support is its edges cut to the data's range; empty bins have no mass anyway.
    lows = np.clip(lows, p.min, p.max)
    highs = np.clip(highs, p.min, p.max)
    xs = np.r_[lows[0], highs]
    ys = np.r_[0.0, np.cumsum(counts) / counts.sum()]
    return xs, ys


def _area(x: Array, d: Array) -> float:
    """The integral of |d| for d linear between the points `x`."""
    w = np.diff(x)
    d0, d1 = d[:-1], d[1:]
    same = d0 * d1 >= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = np.where(
            np.abs(d0) + np.abs(d1) > 0, (d0**2 + d1**2) / (2 * (np.abs(d0) + np.abs(d1))), 0.0
        )
    return float(np.sum(w * np.where(same, (np.abs(d0) + np.abs(d1)) / 2, crossing)))


def homogeneity(r: Array, c: Array) -> tuple[float, float]:
    """The chi-square test of homogeneity of two rows of counts: statistic and p-value.

    As `scipy.stats.chi2_contingency` without continuity correction, on the columns where either
    row has counts; with fewer than two such columns there is nothing to test (0 and 1).
    """
    table = np.vstack([r, c]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = _stats().chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def present(values: Array) -> Array:
    """The column's present values as float64 (text that is no number counts as missing)."""
    numbers = numeric(values)
    missing = np.isnan(numbers)
    return numbers[~missing] if missing.any() else numbers


def unseen_pvalue(unseen: float, n_reference: float, n_current: float) -> float:
    """How likely `unseen` values all land in the current sample if the category was always there.

    Under the null hypothesis the category has the same share on both sides, so given that
    `unseen` values of it were seen at all, each is in the current sample with probability
    n_current / (n_reference + n_current), independently: the exact conditional (binomial) test.
    """
    if unseen <= 0:
        return 1.0
    return float((n_current / (n_reference + n_current)) ** unseen)


def _stats() -> Any:
    """scipy.stats, imported when a statistic first needs it: the import takes about 0.5 s, which
    a serving process (that imports this module for its live drift) would otherwise pay at start."""
    from scipy import stats

    return stats
