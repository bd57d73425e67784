"""Fixtures for evaluation tests: two credit versions in one registry, a gates policy."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from shipyard import Registry


@pytest.fixture
def two_versions(
    sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any, weaker_pipeline: Any
) -> Registry:
    """`credit:1` (the stronger model) and `credit:2` (the weaker one), no aliases."""
    sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    sqlite_registry.register(weaker_pipeline, name="credit", train_data=credit, target="default")
    return sqlite_registry


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
