"""STAND-IN (replaced when part-agnostic merges)."""

from __future__ import annotations

from typing import Any

from shipyard.errors import UnsupportedExplanationError

__all__ = ["LimeExplainer"]


class LimeExplainer:
    """Stand-in."""

    def __init__(self, predictor: Any, **options: Any) -> None:
        raise UnsupportedExplanationError("lime is not built yet")
