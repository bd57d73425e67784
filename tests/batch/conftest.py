"""The batch tests' registry: the credit model registered as credit:1."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from shipyard import Registry
from shipyard.security.context import Context


@pytest.fixture
def registry(sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any) -> Registry:
    sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    return sqlite_registry


@pytest.fixture
def context(registry: Registry) -> Context:
    """The registry's store and principal (the local admin), as the job store takes them."""
    return Context(registry.settings, registry.meta, registry.principal, "t")
