"""Drift statistics against scipy and the textbook PSI: KS, PSI, chi-square, Jensen-Shannon, Wasserstein."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from drift_samples import categories, drift, normal, stat
from shipyard.core.batch import Batch
from shipyard.core.profile import Profile
from shipyard.monitoring.column_drift import ColumnDrift
from shipyard.monitoring.drift import compare
from shipyard.monitoring.statistics import PSI_EPSILON, exact_ks_wasserstein, unseen_pvalue


def drift_raw(reference: np.ndarray, current: np.ndarray) -> ColumnDrift:
    """Column 'x' compared with both raw samples at hand (exact KS and Wasserstein)."""
    ref_batch, cur_batch = Batch.from_columns({"x": reference}), Batch.from_columns({"x": current})
    ref = Profile.build(ref_batch)
    report = compare(ref, ref.profile(cur_batch), reference_data=ref_batch, current_data=cur_batch)
    return report.column("x")


def textbook_psi(edges: list[float], reference: np.ndarray, current: np.ndarray) -> float:
    """sum((a - e) * ln(a / e)) over the bins, shares clipped below at PSI_EPSILON."""
    k = len(edges) + 1
    e = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=k) / len(reference)
    a = np.bincount(np.searchsorted(edges, current, side="right"), minlength=k) / len(current)
    e, a = np.clip(e, PSI_EPSILON, None), np.clip(a, PSI_EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


# -- Kolmogorov-Smirnov ---------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m", "shift"), [(200, 150, 0.3), (3000, 2000, 0.05), (10_000, 10_000, 0.02)])
def test_exact_ks_equals_scipy_on_small_samples(n: int, m: int, shift: float) -> None:
    a, b = normal(1, n), normal(2, m, loc=shift)
    statistic, p, _ = exact_ks_wasserstein(a, b)
    expected = stats.ks_2samp(a, b)
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, abs=1e-12)


def test_exact_ks_equals_scipy_on_data_with_ties() -> None:
    a, b = np.round(normal(3, 4000), 1), np.round(normal(4, 3000, loc=0.05), 1)
    statistic, p, wasserstein = exact_ks_wasserstein(a, b)
    expected = stats.ks_2samp(a, b)
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, abs=1e-12)
    assert wasserstein == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)


def test_exact_statistics_of_sorted_samples_equal_those_of_unsorted_ones() -> None:
    a, b = np.round(normal(5, 3000), 2), normal(6, 5000, loc=0.1)
    assert exact_ks_wasserstein(np.sort(a), np.sort(b)) == pytest.approx(
        exact_ks_wasserstein(a, b), rel=1e-12
    )
    assert exact_ks_wasserstein(b, a)[0] == pytest.approx(exact_ks_wasserstein(a, b)[0], abs=1e-12)


@pytest.mark.parametrize("decimals", [None, 1])
def test_exact_ks_on_large_samples_has_scipys_statistic_and_its_p_value_within_2_percent(
    decimals: int | None,
) -> None:
    a, b = normal(5, 30_000), normal(6, 30_000, loc=0.02)
    if decimals is not None:
        a, b = np.round(a, decimals), np.round(b, decimals)
    statistic, p, _ = exact_ks_wasserstein(a, b)
    expected = stats.ks_2samp(a, b)
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=0.02)


def test_exact_ks_of_a_column_ignores_its_missing_values() -> None:
    a, b = normal(7, 2000), normal(8, 1500, loc=0.2)
    a_missing, b_missing = a.copy(), b.copy()
    a_missing[::9], b_missing[::5] = np.nan, np.nan
    column = drift_raw(a_missing, b_missing)
    expected = stats.ks_2samp(a_missing[~np.isnan(a_missing)], b_missing[~np.isnan(b_missing)])
    assert column.stats["ks_exact"] is True
    assert stat(column, "ks") == pytest.approx(expected.statistic, abs=1e-12)
    assert stat(column, "ks_p") == pytest.approx(expected.pvalue, abs=1e-12)


@pytest.mark.parametrize(
    ("loc", "scale", "decimals"),
    [
        (0.0, 1.0, None),
        (0.05, 1.0, None),
        (0.5, 1.0, None),
        (0.0, 2.0, None),
        (0.0, 0.5, None),
        (-3.0, 0.2, None),
        (0.3, 1.0, 0),
        (1.0, 1.5, 1),
    ],
)
def test_grid_ks_interval_holds_the_true_statistic(loc: float, scale: float, decimals: int | None) -> None:
    a, b = normal(9, 20_000), normal(10, 10_000, loc=loc, scale=scale)
    if decimals is not None:
        a, b = np.round(a, decimals), np.round(b, decimals)
    column = drift({"x": a}, {"x": b}).column("x")
    true = stats.ks_2samp(a, b).statistic
    assert column.stats["ks_exact"] is False
    assert stat(column, "ks") <= true + 1e-12
    assert true <= stat(column, "ks_upper") + 1e-12


# -- population stability index -------------------------------------------------------------------


@pytest.mark.parametrize(("loc", "scale"), [(0.0, 1.0), (0.3, 1.0), (0.0, 1.7)])
def test_psi_equals_the_textbook_formula_on_the_reference_quantile_bins(loc: float, scale: float) -> None:
    a, b = normal(11, 20_000), normal(12, 8000, loc=loc, scale=scale)
    column = drift({"x": a}, {"x": b}).column("x")
    edges = column.bins["edges"]
    assert len(edges) == 9
    assert stat(column, "psi") == pytest.approx(textbook_psi(edges, a, b), rel=1e-9, abs=1e-12)


def test_psi_counts_an_empty_current_bin_as_epsilon() -> None:
    a = normal(13, 20_000)
    b = np.abs(normal(14, 5000)) + 0.5  # nothing below the reference's median
    column = drift({"x": a}, {"x": b}).column("x")
    assert column.bins["current"][0] == 0.0
    expected = textbook_psi(column.bins["edges"], a, b)
    assert np.isfinite(stat(column, "psi"))
    assert stat(column, "psi") == pytest.approx(expected, rel=1e-9)
    assert column.level == "drift"


# -- categorical, Jensen-Shannon and Wasserstein --------------------------------------------------


def test_chi_square_equals_scipy_on_the_table_of_reference_and_current_counts() -> None:
    ref = categories(15, 3000, ["a", "b", "c", "d"], [0.4, 0.3, 0.2, 0.1])
    cur = categories(16, 2000, ["a", "b", "c", "d", "e"], [0.3, 0.3, 0.25, 0.1, 0.05])
    column = drift({"c": ref}, {"c": cur}).column("c")
    labels = ["a", "b", "c", "d", "e"]
    table = np.array([[np.sum(ref == k) for k in labels], [np.sum(cur == k) for k in labels]])
    expected = stats.chi2_contingency(table, correction=False)
    assert column.kind == "categorical"
    assert stat(column, "chi2") == pytest.approx(expected.statistic, rel=1e-12)
    assert stat(column, "chi2_p") == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_categorical_js_distance_equals_scipy_base_2() -> None:
    ref = categories(17, 3000, ["a", "b", "c"], [0.5, 0.3, 0.2])
    cur = categories(18, 2000, ["a", "b", "c", "z"], [0.4, 0.3, 0.2, 0.1])
    column = drift({"c": ref}, {"c": cur}).column("c")
    labels = ["a", "b", "c", "z"]
    p = np.array([np.mean(ref == k) for k in labels])
    q = np.array([np.mean(cur == k) for k in labels])
    assert stat(column, "js") == pytest.approx(jensenshannon(p, q, base=2), rel=1e-12)


def test_numeric_js_distance_equals_scipy_base_2_on_the_psi_bins() -> None:
    a, b = normal(19, 20_000), normal(20, 8000, loc=0.4)
    column = drift({"x": a}, {"x": b}).column("x")
    k = len(column.bins["edges"]) + 1
    p = np.bincount(np.searchsorted(column.bins["edges"], a, side="right"), minlength=k) / len(a)
    q = np.bincount(np.searchsorted(column.bins["edges"], b, side="right"), minlength=k) / len(b)
    assert stat(column, "js") == pytest.approx(jensenshannon(p, q, base=2), rel=1e-9)


@pytest.mark.parametrize("decimals", [None, 1])
def test_exact_wasserstein_equals_scipy(decimals: int | None) -> None:
    a, b = normal(21, 5000), normal(22, 4000, loc=0.3, scale=1.4)
    if decimals is not None:
        a, b = np.round(a, decimals), np.round(b, decimals)
    column = drift_raw(a, b)
    assert stat(column, "wasserstein") == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)


def test_grid_wasserstein_is_within_15_percent_of_scipy_for_a_shifted_normal() -> None:
    a, b = normal(23, 20_000), normal(24, 10_000, loc=0.5)
    column = drift({"x": a}, {"x": b}).column("x")
    assert stat(column, "wasserstein") == pytest.approx(stats.wasserstein_distance(a, b), rel=0.15)


def test_grid_wasserstein_is_within_15_percent_of_scipy_for_a_widened_normal() -> None:
    a, b = normal(25, 20_000), normal(26, 10_000, loc=1.0, scale=3.0)
    column = drift({"x": a}, {"x": b}).column("x")
    assert stat(column, "wasserstein") == pytest.approx(stats.wasserstein_distance(a, b), rel=0.15)


# -- unseen categories ----------------------------------------------------------------------------


def test_unseen_pvalue_is_the_exact_conditional_test() -> None:
    # 4 unseen values, reference 3 times the current: each lands in the current with chance 1/4.
    assert unseen_pvalue(4, 300, 100) == pytest.approx(0.25**4)
    assert unseen_pvalue(0, 300, 100) == 1.0
    assert stats.binomtest(4, 4, 0.25, alternative="greater").pvalue == pytest.approx(
        unseen_pvalue(4, 300, 100)
    )
