"""Fixtures for evaluation tests: two credit versions in one registry, a gates policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from homes import copy_home
from shipyard import Registry


@pytest.fixture
def two_versions(request: pytest.FixtureRequest, tmp_path: Path, credit_v1_v2_home: Path) -> Registry:
    """`credit:1` (the stronger model) and `credit:2` (the weaker one), no aliases: the
    `sqlite_registry`, opened on a copy of a home where they were registered once."""
    copy_home(credit_v1_v2_home, tmp_path / "home")
    registry: Registry = request.getfixturevalue("sqlite_registry")
    return registry


@pytest.fixture
def policy_text() -> str:
    """A gates policy with absolute, relative, sliced, fairness and robustness rules."""
    return """\
champion: production
rules:
  - roc_auc >= 0.55
  - roc_auc >= champion - 0.01
  - brier <= champion * 1.2
  - recall >= 0.0 on employment=unemployed
  - fairness.country.demographic_parity_difference <= 0.5
  - robustness.noise.stability >= 0.5
"""
