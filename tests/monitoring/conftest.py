"""Fixtures of the monitoring tests: a registry with the credit model registered as credit:1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shipyard import Registry, Settings


@pytest.fixture
def reg(tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any) -> Iterator[Registry]:
    """A registry of its own home, acting as 'tester', with credit:1 (target 'default')."""
    with Registry(Settings.for_home(tmp_path / "home"), actor="tester") as registry:
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
        yield registry
