"""The registry: models, versions, aliases, tags and lineage over the stores and flavors."""

from __future__ import annotations

from shipyard.registry.loaded import LoadedModel
from shipyard.registry.registry import Change, ModelVersion, RegisteredModel, Registry

__all__ = ["Change", "LoadedModel", "ModelVersion", "RegisteredModel", "Registry"]
