from __future__ import annotations

import json

import numpy as np
import pytest

from shipyard import Batch, Predictions, Profile, ProfileError


@pytest.fixture
def reference() -> Profile:
    rng = np.random.default_rng(0)
    data = Batch.from_columns(
        {
            "x": rng.normal(size=2000),
            "c": rng.choice(np.array(["a", "b", "c"], dtype=object), 2000),
        }
    )
    predictions = Predictions("classification", rng.choice([0, 1], 2000), rng.dirichlet([1, 1], 2000), (0, 1))
    return Profile.build(data, predictions=predictions)


def _batch(seed: int, n: int) -> tuple[Batch, Predictions]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[::7] = np.nan
    data = Batch.from_columns({"x": x, "c": rng.choice(np.array(["a", "b", "z"], dtype=object), n)})
    predictions = Predictions("classification", rng.choice([0, 1], n), rng.dirichlet([1, 1], n), (0, 1))
    return data, predictions


def test_numeric_profile_has_quantile_edges_counts_and_moments(reference: Profile) -> None:
    x = reference.features["x"]
    assert x.kind == "numeric"
    assert len(x.edges) == 99
    assert sum(x.counts) == x.count == 2000
    assert max(x.counts) - min(x.counts) <= 2
    assert x.min is not None and x.min < x.edges[0]


def test_profiles_of_disjoint_data_add_up_to_the_profile_of_both(reference: Profile) -> None:
    a, pa = _batch(1, 300)
    b, pb = _batch(2, 500)
    both = Batch.from_columns({n: np.concatenate([a.columns[n], b.columns[n]]) for n in a.names})
    pboth = Predictions(
        "classification",
        np.concatenate([pa.values, pb.values]),
        np.vstack([pa.probabilities, pb.probabilities]),
        (0, 1),
    )
    added = reference.profile(a, pa) + reference.profile(b, pb)
    whole = reference.profile(both, pboth)
    assert added.rows == whole.rows == 800
    for name in ("x",):
        left, right = added.features[name], whole.features[name]
        assert left.counts == right.counts
        assert (left.missing, left.count, left.min, left.max) == (
            right.missing,
            right.count,
            right.min,
            right.max,
        )
        assert left.mean == pytest.approx(right.mean)
        assert left.variance == pytest.approx(right.variance)
    assert added.features["c"] == whole.features["c"]
    assert added.outputs["prediction"] == whole.outputs["prediction"]
    assert added.outputs["proba_1"].counts == whole.outputs["proba_1"].counts


def test_profile_round_trips_through_json(reference: Profile) -> None:
    text = json.dumps(reference.to_dict())
    assert Profile.from_dict(json.loads(text)) == reference


def test_profiles_on_different_edges_refuse_to_add(reference: Profile) -> None:
    data, _ = _batch(3, 100)
    other = Profile.build(data)
    with pytest.raises(ProfileError, match="different bin edges"):
        reference.profile(data) + other


def test_empty_window_adds_nothing(reference: Profile) -> None:
    data, predictions = _batch(4, 50)
    window = reference.profile(data, predictions)
    assert reference.empty() + window == window
