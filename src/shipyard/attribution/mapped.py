"""STAND-IN (replaced when part-pipelines merges)."""

from __future__ import annotations

from typing import Any

__all__ = ["Mapped"]


class Mapped:
    """Stand-in."""

    def __init__(self, front: Any, engine: Any, *, names: Any) -> None:
        raise NotImplementedError
