"""Drift statistics against scipy and a textbook PSI; levels judged on effect sizes; settings; profiles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from scipy import stats
from scipy.spatial.distance import jensenshannon

from drift_samples import categories, drift, normal, stat
from shipyard.core.batch import Batch
from shipyard.core.profile import NumericProfile, Profile
from shipyard.errors import MonitorConfigError
from shipyard.monitoring.column_drift import ColumnDrift
from shipyard.monitoring.drift import (
    PSI_EPSILON,
    DriftSettings,
    compare,
    exact_ks_wasserstein,
)
from shipyard.monitoring.statistics import unseen_pvalue


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


# -- levels ---------------------------------------------------------------------------------------


def test_too_few_current_rows_are_insufficient() -> None:
    report = drift({"x": normal(33, 5000)}, {"x": normal(34, 50, loc=3.0)})
    assert report.column("x").level == "insufficient"
    assert report.share == 0.0
    assert not report.dataset_drift


def test_ignored_column_is_ignored_and_left_out_of_the_share() -> None:
    settings = DriftSettings.parse("columns: {x: {ignore: true}}")
    report = drift(
        {"x": normal(35, 5000), "y": normal(36, 5000)},
        {"x": normal(37, 5000, loc=2.0), "y": normal(38, 5000)},
        settings=settings,
    )
    assert report.column("x").level == "ignored"
    assert report.share == 0.0


def test_unseen_pvalue_is_the_exact_conditional_test() -> None:
    # 4 unseen values, reference 3 times the current: each lands in the current with chance 1/4.
    assert unseen_pvalue(4, 300, 100) == pytest.approx(0.25**4)
    assert unseen_pvalue(0, 300, 100) == 1.0
    assert stats.binomtest(4, 4, 0.25, alternative="greater").pvalue == pytest.approx(
        unseen_pvalue(4, 300, 100)
    )


def test_dataset_share_is_weighted_by_importance() -> None:
    reference = {"a": normal(45, 3000), "b": normal(46, 3000), "c": normal(47, 3000)}
    current = {"a": normal(48, 3000, loc=1.0), "b": normal(49, 3000), "c": normal(50, 3000)}
    plain = drift(reference, current)
    weighted = drift(reference, current, importance={"a": 6.0, "b": 2.0, "c": 2.0})
    assert plain.drifted_features == weighted.drifted_features == ["a"]
    assert plain.share == pytest.approx(1 / 3)
    assert not plain.weighted
    assert not plain.dataset_drift
    assert weighted.share == pytest.approx(0.6)
    assert weighted.weighted
    assert weighted.dataset_drift


def test_features_are_listed_most_severe_first() -> None:
    report = drift(
        {"a": normal(51, 3000), "b": normal(52, 3000)},
        {"a": normal(53, 3000), "b": normal(54, 3000, loc=1.0)},
    )
    assert [c.name for c in report.features] == ["b", "a"]


# -- settings -------------------------------------------------------------------------------------

SETTINGS_YAML = """
defaults: {psi: [0.15, 0.3], js: 0.2, wasserstein: 0.25, missing: 0.1, unseen: 0.02, alpha: 0.01,
           min_rows: 500}
columns:
  age: {psi: [0.2, 0.4]}
  customer_id: {ignore: true}
bins: 20
dataset_share: 0.3
"""


def test_settings_parse_reads_every_key() -> None:
    settings = DriftSettings.parse(SETTINGS_YAML)
    assert settings.defaults.psi == (0.15, 0.3)
    assert (settings.defaults.js, settings.defaults.wasserstein, settings.defaults.alpha) == (0.2, 0.25, 0.01)
    assert settings.defaults.min_rows == 500
    assert settings.for_column("age").psi == (0.2, 0.4)
    assert settings.for_column("age").js == 0.2  # merged over the defaults
    assert settings.for_column("customer_id").ignore
    assert not settings.for_column("other").ignore
    assert (settings.bins, settings.dataset_share) == (20, 0.3)


def test_settings_round_trip_through_yaml() -> None:
    settings = DriftSettings.parse(SETTINGS_YAML)
    assert DriftSettings.parse(yaml.safe_dump(settings.to_dict())) == settings
    assert DriftSettings.parse(json.dumps(settings.to_dict())) == settings


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("thresholds: {}", "thresholds"),
        ("defaults: {psy: 0.1}", "psy"),
        ("columns: {age: {jsd: 0.1}}", "jsd"),
        ("defaults: {psi: [0.3, 0.1]}", "psi"),
        ("defaults: {psi: [0.1, 0.2, 0.3]}", "psi"),
        ("defaults: {js: -1}", "js"),
        ("defaults: {wasserstein: 'far'}", "wasserstein"),
        ("defaults: {alpha: 1.5}", "alpha"),
        ("defaults: {min_rows: 0}", "min_rows"),
        ("defaults: {ignore: 'yes please'}", "ignore"),
        ("columns: {age: [0.1]}", "age"),
        ("columns: [age]", "columns"),
        ("bins: 1", "bins"),
        ("bins: 10.5", "bins"),
        ("dataset_share: 0", "dataset_share"),
        ("defaults: {psi: [0.1, 0.2]", "YAML"),
    ],
)
def test_bad_settings_are_rejected_naming_the_key(text: str, named: str) -> None:
    with pytest.raises(MonitorConfigError, match=named):
        DriftSettings.parse(text)


@pytest.mark.parametrize("value", ["abc", "null", "{a: 1}"])
def test_non_numeric_scalar_psi_is_rejected_naming_the_key(value: str) -> None:
    with pytest.raises(MonitorConfigError, match="psi"):
        DriftSettings.parse(f"defaults: {{psi: {value}}}")


@pytest.mark.parametrize("key", ["js", "wasserstein", "alpha"])
def test_nan_threshold_is_rejected_naming_the_key(key: str) -> None:
    with pytest.raises(MonitorConfigError, match=key):
        DriftSettings.parse(f"defaults: {{{key}: .nan}}")


# -- profiles -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> Profile:
    return Profile.build(
        Batch.from_columns({"x": normal(55, 5000), "c": categories(56, 5000, ["a", "b"], [0.6, 0.4])})
    )


def halves() -> tuple[Batch, Batch, Batch]:
    x = normal(57, 4000, loc=0.3, scale=1.5)
    x[::11] = np.nan
    c = categories(58, 4000, ["a", "b", "z"], [0.5, 0.4, 0.1])
    return (
        Batch.from_columns({"x": x[:1500], "c": c[:1500]}),
        Batch.from_columns({"x": x[1500:], "c": c[1500:]}),
        Batch.from_columns({"x": x, "c": c}),
    )


def test_profiles_of_two_parts_add_up_to_the_profile_of_both_with_tail_sums(reference: Profile) -> None:
    a, b, both = halves()
    added, whole = reference.profile(a) + reference.profile(b), reference.profile(both)
    left, right = added.features["x"], whole.features["x"]
    assert isinstance(left, NumericProfile)
    assert isinstance(right, NumericProfile)
    assert (left.counts, left.missing, left.count, left.min, left.max) == (
        right.counts,
        right.missing,
        right.count,
        right.min,
        right.max,
    )
    assert left.tail_sums is not None
    assert right.tail_sums is not None
    assert left.tail_sums == pytest.approx(right.tail_sums, rel=1e-12)
    assert right.tail_sums[0] < 0 < right.tail_sums[1]
    assert added.features["c"] == whole.features["c"]


def test_profile_round_trips_through_json_with_tail_sums(reference: Profile) -> None:
    restored = Profile.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert restored == reference
    x, original = restored.features["x"], reference.features["x"]
    assert isinstance(x, NumericProfile)
    assert isinstance(original, NumericProfile)
    assert x.tail_sums is not None
    assert x.tail_sums == original.tail_sums


def test_profile_written_without_tail_sums_loads_and_still_drifts(reference: Profile) -> None:
    old = reference.to_dict()
    del old["features"]["x"]["tail_sums"]
    loaded = Profile.from_dict(old)
    x = loaded.features["x"]
    assert isinstance(x, NumericProfile)
    assert x.tail_sums is None
    current = reference.profile(
        Batch.from_columns(
            {"x": normal(59, 3000, loc=0.8), "c": categories(60, 3000, ["a", "b"], [0.6, 0.4])}
        )
    )
    old_current = current.to_dict()
    del old_current["features"]["x"]["tail_sums"]
    report = compare(loaded, Profile.from_dict(old_current))
    column = report.column("x")
    assert column.level == "drift"
    assert np.isfinite(stat(column, "wasserstein"))
    assert stat(column, "wasserstein") == pytest.approx(0.8, rel=0.15)


def test_the_headline_names_drifted_features_before_the_data_set_verdict() -> None:
    reference = {"a": normal(60, 3000), "b": normal(61, 3000), "c": normal(62, 3000)}
    current = {"a": normal(63, 3000, loc=2.0), "b": normal(64, 3000), "c": normal(65, 3000)}
    report = drift(reference, current)
    assert not report.dataset_drift  # one feature of three: below the data set's share
    assert report.headline.startswith("drift in 1 feature (a); below the data set verdict (33% of")
    assert report.to_dict()["headline"] == report.headline
    calm = drift(reference, {"a": normal(66, 3000), "b": normal(67, 3000), "c": normal(68, 3000)})
    assert calm.headline == "no drift"
    few = drift(reference, {"a": normal(69, 40, loc=2.0), "b": normal(70, 40), "c": normal(71, 40)})
    assert few.headline == "not judged: 40 current rows; at least 100 are needed"
