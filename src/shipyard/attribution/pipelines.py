"""STAND-IN (replaced when part-pipelines merges)."""

from __future__ import annotations

from typing import Any

__all__ = ["Front", "front_of"]


class Front:
    """Stand-in."""

    estimator: Any

    def transform(self, batch: Any) -> Any:
        """Stand-in."""
        raise NotImplementedError


def front_of(model: Any, *, names: Any, frame_input: bool) -> Front | None:
    """Stand-in: no fronts yet."""
    return None
