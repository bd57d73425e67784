"""The registry a CLI command works on, opened from the environment."""

from __future__ import annotations

from shipyard.config import Settings
from shipyard.registry import Registry

__all__ = ["registry"]


def registry() -> Registry:
    """A registry from `SHIPYARD_HOME` / `SHIPYARD_DB_URL` / `SHIPYARD_STORE_URL`; use with `with`."""
    return Registry(Settings.from_env())
