"""Homes registered once and copied: a fresh home for each test without registering again."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from shipyard import Registry, Settings

__all__ = ["copy_home", "home_made_once"]


def home_made_once(folder: Path, fill: Callable[[Registry], object]) -> Path:
    """A home at `folder` where `fill` registered its versions, acting as 'tester', then closed.

    Registering the credit model takes seconds (its contract, profile and importance); the fixtures
    that need it in a fresh home each test copy this home instead (`copy_home`): a home is its
    SQLite file and its content-addressed artifacts, and holds no absolute path.
    """
    with Registry(Settings.for_home(folder), actor="tester") as registry:
        fill(registry)
    return folder


def copy_home(template: Path, home: Path) -> Path:
    """A copy of `template` at `home` (which must not exist yet: nothing has opened it)."""
    shutil.copytree(template, home)
    return home
