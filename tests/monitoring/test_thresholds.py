"""Drift settings: every key read, merged over the defaults, round-tripped, and bad ones refused by name."""

from __future__ import annotations

import json

import pytest
import yaml

from shipyard.errors import MonitorConfigError
from shipyard.monitoring.thresholds import DriftSettings

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
