"""Fixtures for evaluation tests: two credit versions and a labelled holdout."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from shipyard import Registry
from shipyard.cli.demo import credit_data, credit_model


@pytest.fixture(scope="session")
def holdout() -> pd.DataFrame:
    """Labelled credit rows the models were not trained on."""
    return credit_data(800, seed=7)


@pytest.fixture(scope="session")
def weaker_pipeline() -> Any:
    """A credit model trained on fewer rows: a plausible, somewhat worse challenger."""
    return credit_model(credit_data(300, seed=3))


@pytest.fixture
def two_versions(sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any,
                 weaker_pipeline: Any) -> Registry:
    """`credit:1` (the stronger model) and `credit:2` (the weaker one), no aliases."""
    sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    sqlite_registry.register(weaker_pipeline, name="credit", train_data=credit, target="default")
    return sqlite_registry
