"""Shipyard: take a trained model from a notebook to production and keep it healthy there.

import shipyard
v = shipyard.register(model, name="fraud", train_data=df, target="label")
p = shipyard.load("fraud@staging")
p.predict(rows)
"""

from __future__ import annotations

from typing import Any

from shipyard.config import Settings
from shipyard.core.batch import Batch, Predictions
from shipyard.core.contract import Contract, Feature, Validation, Violation
from shipyard.core.dtypes import DType
from shipyard.core.profile import Profile
from shipyard.core.refs import ModelRef
from shipyard.errors import (
    ArtifactIntegrityError,
    ConfigError,
    ConflictError,
    ContractError,
    ContractViolationError,
    FlavorError,
    InputError,
    MissingDependencyError,
    NotFoundError,
    NotReadyError,
    PredictionError,
    ProfileError,
    RefError,
    RegistryError,
    RequestTooLargeError,
    ServingError,
    ShipyardError,
    StoreError,
    StoreUnavailableError,
    UnknownFlavorError,
    UnknownModelError,
    UnsupportedMediaError,
    UntrustedArtifactError,
)
from shipyard.registry import Change, LoadedModel, ModelVersion, RegisteredModel, Registry
from shipyard.registry.default import default_registry as _default_registry
from shipyard.serving.client import Client, ServedPrediction

__version__ = "0.1.0"

__all__ = [
    "ArtifactIntegrityError",
    "Batch",
    "Change",
    "Client",
    "ConfigError",
    "ConflictError",
    "Contract",
    "ContractError",
    "ContractViolationError",
    "DType",
    "Feature",
    "FlavorError",
    "InputError",
    "LoadedModel",
    "MissingDependencyError",
    "ModelRef",
    "ModelVersion",
    "NotFoundError",
    "NotReadyError",
    "PredictionError",
    "Predictions",
    "Profile",
    "ProfileError",
    "RefError",
    "RegisteredModel",
    "Registry",
    "RegistryError",
    "RequestTooLargeError",
    "ServedPrediction",
    "ServingError",
    "Settings",
    "ShipyardError",
    "StoreError",
    "StoreUnavailableError",
    "UnknownFlavorError",
    "UnknownModelError",
    "UnsupportedMediaError",
    "UntrustedArtifactError",
    "Validation",
    "Violation",
    "__version__",
    "load",
    "register",
]


def register(model: object, *, name: str, **kwargs: Any) -> ModelVersion:
    """Register `model` in the default registry; see `Registry.register` for the options."""
    return _default_registry().register(model, name=name, **kwargs)


def load(ref: str | ModelRef, *, trust_code: bool = False) -> LoadedModel:
    """Load a version from the default registry (`'fraud@staging'`, `'fraud:3'`, `'fraud'`)."""
    return _default_registry().load(ref, trust_code=trust_code)
