"""A model's own importance per feature, which weights the dataset drift verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from shipyard.core.batch import Array

if TYPE_CHECKING:
    from shipyard.registry.loaded import LoadedModel
    from shipyard.registry.records import ModelVersion
    from shipyard.registry.registry import Registry

__all__ = ["importance_of", "model_importance"]


def model_importance(loaded: LoadedModel) -> dict[str, float] | None:
    """The model's own importance per feature (`feature_importances_` or `|coef_|`), if it has one.

    Pipelines are looked through to their last step; the importances are used only when there
    is one per contract feature (a pipeline that expands features has none that map back).
    """
    model = loaded.model
    steps = getattr(model, "steps", None)
    if steps:
        model = steps[-1][1]
    names = loaded.contract.names
    values: Array | None = None
    raw = getattr(model, "feature_importances_", None)
    if raw is not None:
        values = np.asarray(raw, dtype=np.float64)
    else:
        coef = getattr(model, "coef_", None)
        if coef is not None:
            weights = np.abs(np.asarray(coef, dtype=np.float64))
            if names and weights.size % len(names) == 0:
                values = weights.reshape(-1, len(names)).sum(axis=0)
    if values is None or values.shape != (len(names),) or not np.all(np.isfinite(values)):
        return None
    return dict(zip(names, values.tolist(), strict=True))


def importance_of(registry: Registry, version: ModelVersion) -> dict[str, float] | None:
    """The importance of the version's model per feature, or None (also when it will not load)."""
    try:
        return model_importance(registry.load(version.ref))
    except Exception:  # importance only weights the verdict; a model that will not load still gets a report
        return None
