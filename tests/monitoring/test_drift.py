"""Drift judged on effect sizes: levels, the weighted dataset verdict, the order and headline; profiles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drift_samples import categories, drift, normal, stat
from shipyard.core.batch import Batch
from shipyard.core.profile import NumericProfile, Profile
from shipyard.monitoring.drift import DriftSettings, compare

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
