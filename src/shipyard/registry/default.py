"""The process-wide default registry behind `shipyard.register` and `shipyard.load`.

This module is the one place that holds global state: a registry opened from the environment
on first use. `reset()` closes it, for tests and for code that changes the environment.
"""

from __future__ import annotations

import threading

from shipyard.registry.registry import Registry

__all__ = ["default_registry", "reset"]

_lock = threading.Lock()
_registry: Registry | None = None


def default_registry() -> Registry:
    """The registry opened from the environment (`SHIPYARD_HOME`, `SHIPYARD_DB_URL`, ...)."""
    global _registry  # noqa: PLW0603 -- the documented process-wide default
    with _lock:
        if _registry is None:
            _registry = Registry()
        return _registry


def reset() -> None:
    """Close the default registry; the next use opens it again from the environment."""
    global _registry  # noqa: PLW0603 -- the documented process-wide default
    with _lock:
        if _registry is not None:
            _registry.close()
        _registry = None
