"""Fixtures of the registry tests: a first registered version."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from shipyard import Registry


@pytest.fixture
def v1(registry: Registry, cancer_model: Any, cancer: pd.DataFrame) -> Any:
    """cancer:1, tagged team=onc and described 'first'."""
    return registry.register(
        cancer_model,
        name="cancer",
        train_data=cancer,
        target="label",
        tags={"team": "onc"},
        description="first",
    )
