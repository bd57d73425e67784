"""The registry a CLI command works on, opened from the environment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.config import Settings

if TYPE_CHECKING:
    from shipyard.registry import Registry
    from shipyard.security.context import Context

__all__ = ["context", "registry"]


def registry() -> Registry:
    """A registry from `SHIPYARD_HOME` / `SHIPYARD_DB_URL` / `SHIPYARD_STORE_URL`; use with `with`.

    The registry (SQLAlchemy, pandas, the flavors) is imported here, on a command's first use of
    it, so `shipyard --help` and `shipyard version` start at once.
    """
    from shipyard.registry import Registry

    return Registry(Settings.from_env())


def context() -> Context:
    """The metadata store and who acts, from the environment, for a command that needs no
    artifacts or models (jobs, schedules); use with `with`."""
    from shipyard.security.context import Context

    return Context.open(Settings.from_env())
