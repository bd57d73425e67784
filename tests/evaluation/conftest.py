"""Fixtures for evaluation tests: two credit versions in one registry."""

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
