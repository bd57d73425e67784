"""The batch tests' registry: the credit model registered as credit:1."""

from __future__ import annotations

from pathlib import Path

import pytest

from homes import copy_home
from shipyard import Registry
from shipyard.security.context import Context


@pytest.fixture
def registry(request: pytest.FixtureRequest, tmp_path: Path, credit_v1_home: Path) -> Registry:
    """The `sqlite_registry`, opened on a copy of a home with credit:1 registered once."""
    copy_home(credit_v1_home, tmp_path / "home")
    registry: Registry = request.getfixturevalue("sqlite_registry")
    return registry


@pytest.fixture
def context(registry: Registry) -> Context:
    """The registry's store and principal (the local admin), as the job store takes them."""
    return Context(registry.settings, registry.meta, registry.principal, "t")
