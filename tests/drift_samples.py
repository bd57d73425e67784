"""Samples and drift reports shared by the drift tests (tests/monitoring)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from shipyard.core.batch import Batch
from shipyard.core.profile import Profile
from shipyard.monitoring.column_drift import ColumnDrift
from shipyard.monitoring.drift import DriftReport, DriftSettings, compare


def normal(seed: int, n: int, loc: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc, scale, size=n)


def drift(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    *,
    settings: DriftSettings | None = None,
    importance: Mapping[str, float] | None = None,
) -> DriftReport:
    """The report of `current` against a reference profile built from `reference`."""
    ref = Profile.build(Batch.from_columns(reference))
    current_profile = ref.profile(Batch.from_columns(current))
    return compare(ref, current_profile, settings=settings, importance=importance)


def stat(column: ColumnDrift, key: str) -> float:
    """A numeric statistic of the column, which must have been computed."""
    value = column.stats[key]
    assert isinstance(value, float), f"{key} is {value!r}"
    return value


def categories(seed: int, n: int, values: list[str], shares: list[float]) -> np.ndarray:
    return np.random.default_rng(seed).choice(np.array(values, dtype=object), size=n, p=shares)
