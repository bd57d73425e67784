"""Fixtures of the monitoring tests: a registry with the credit model registered as credit:1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from homes import copy_home
from shipyard import Registry, Settings


@pytest.fixture
def reg(tmp_path: Path, credit_v1_home: Path) -> Iterator[Registry]:
    """A registry of its own home, acting as 'tester', with credit:1 (target 'default'): a copy of
    a home where it was registered once."""
    with Registry(
        Settings.for_home(copy_home(credit_v1_home, tmp_path / "home")), actor="tester"
    ) as registry:
        yield registry
