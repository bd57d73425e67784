"""STAND-IN (replaced when part-pipelines merges)."""

from __future__ import annotations

from typing import Any

__all__ = ["linear_explainer"]


def linear_explainer(model: Any, *, background: Any, classes: Any) -> Any:
    """Stand-in: no linear engine yet."""
    return None
