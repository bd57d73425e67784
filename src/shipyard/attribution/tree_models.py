"""STAND-IN (replaced when part-trees merges)."""

from __future__ import annotations

from typing import Any

__all__ = ["tree_explainer"]


def tree_explainer(model: Any, *, classes: Any) -> Any:
    """Stand-in: no tree engine yet."""
    return None
