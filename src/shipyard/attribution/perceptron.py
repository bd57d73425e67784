"""Exact coalition values of scikit-learn MLPs by a fused forward pass (placeholder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shipyard.attribution.shapley import Columns, Oracle
from shipyard.flavors.base import Predictor

__all__ = ["mlp_oracle"]


def mlp_oracle(
    predictor: Predictor, names: Sequence[str], classes: tuple[Any, ...] | None, background: Columns
) -> Oracle | None:
    """The fused oracle of a scikit-learn MLP, or None when the model is not one."""
    return None
