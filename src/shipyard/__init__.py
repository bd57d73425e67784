"""Shipyard: take a trained model from a notebook to production and keep it healthy there.

import shipyard
v = shipyard.register(model, name="fraud", train_data=df, target="label")
p = shipyard.load("fraud@staging")
p.predict(rows)
e = shipyard.evaluate("fraud:2", "holdout.parquet", target="label")
g = shipyard.check_gates("fraud:2", "gates.yaml")
m = shipyard.monitor_report(None, "fraud@production", window=timedelta(hours=6))
d = shipyard.drift(train_df, todays_df)
"""

from __future__ import annotations

from typing import Any

from shipyard.batch.run import BatchOptions, resume_job, start_job
from shipyard.config import Settings
from shipyard.core.batch import Batch, Predictions
from shipyard.core.contract import Contract, Feature, Validation, Violation
from shipyard.core.dtypes import DType
from shipyard.core.profile import Profile
from shipyard.core.refs import ModelRef
from shipyard.errors import (
    ArtifactIntegrityError,
    AuthenticationError,
    BatchError,
    ConfigError,
    ConflictError,
    ContractError,
    ContractViolationError,
    DeploymentNotFoundError,
    EncryptionError,
    EvaluationError,
    FeedbackError,
    FlavorError,
    GateError,
    InputError,
    MissingDependencyError,
    MonitorConfigError,
    MonitoringError,
    NotFoundError,
    NotReadyError,
    PermissionDeniedError,
    PolicyError,
    PredictionError,
    ProfileError,
    RateLimitedError,
    RefError,
    RegistryError,
    RequestTooLargeError,
    RolloutConflictError,
    RolloutError,
    SecurityError,
    ServingError,
    ShipyardError,
    SignatureError,
    StoreError,
    StoreUnavailableError,
    UnknownFlavorError,
    UnknownModelError,
    UnsupportedMediaError,
    UntrustedArtifactError,
)
from shipyard.evaluation.evaluate import Evaluation, evaluate
from shipyard.evaluation.gates import GateResult, Policy, check_gates
from shipyard.evaluation.mitigation import reweighing_weights
from shipyard.evaluation.robustness import RobustnessSettings, adversarial_examples
from shipyard.monitoring.alerts import Rule
from shipyard.monitoring.drift import DriftReport, drift
from shipyard.monitoring.monitor import MonitorReport, monitor_report
from shipyard.monitoring.thresholds import DriftSettings, Thresholds
from shipyard.monitoring.watch import Watcher
from shipyard.registry import Change, LoadedModel, ModelVersion, RegisteredModel, Registry
from shipyard.registry.default import default_registry as _default_registry
from shipyard.rollout.analysis import Verdict
from shipyard.rollout.controller import Controller
from shipyard.rollout.deployments import Arm, Deployment, Deployments
from shipyard.rollout.plan import AnalysisRules, Plan
from shipyard.rollout.rollouts import Rollout, Rollouts
from shipyard.security.access import Action, Principal, Role
from shipyard.security.audit import AuditLog
from shipyard.security.keys import Keys
from shipyard.security.signing import SigningKey, TrustedKeys
from shipyard.serving.client import Client, ServedPrediction

__version__ = "0.1.0"

__all__ = [
    "Action",
    "AnalysisRules",
    "Arm",
    "ArtifactIntegrityError",
    "AuditLog",
    "AuthenticationError",
    "Batch",
    "BatchError",
    "BatchOptions",
    "Change",
    "Client",
    "ConfigError",
    "ConflictError",
    "Contract",
    "ContractError",
    "ContractViolationError",
    "Controller",
    "DType",
    "Deployment",
    "DeploymentNotFoundError",
    "Deployments",
    "DriftReport",
    "DriftSettings",
    "EncryptionError",
    "Evaluation",
    "EvaluationError",
    "Feature",
    "FeedbackError",
    "FlavorError",
    "GateError",
    "GateResult",
    "InputError",
    "Keys",
    "LoadedModel",
    "MissingDependencyError",
    "ModelRef",
    "ModelVersion",
    "MonitorConfigError",
    "MonitorReport",
    "MonitoringError",
    "NotFoundError",
    "NotReadyError",
    "PermissionDeniedError",
    "Plan",
    "Policy",
    "PolicyError",
    "PredictionError",
    "Predictions",
    "Principal",
    "Profile",
    "ProfileError",
    "RateLimitedError",
    "RefError",
    "RegisteredModel",
    "Registry",
    "RegistryError",
    "RequestTooLargeError",
    "RobustnessSettings",
    "Role",
    "Rollout",
    "RolloutConflictError",
    "RolloutError",
    "Rollouts",
    "Rule",
    "SecurityError",
    "ServedPrediction",
    "ServingError",
    "Settings",
    "ShipyardError",
    "SignatureError",
    "SigningKey",
    "StoreError",
    "StoreUnavailableError",
    "Thresholds",
    "TrustedKeys",
    "UnknownFlavorError",
    "UnknownModelError",
    "UnsupportedMediaError",
    "UntrustedArtifactError",
    "Validation",
    "Verdict",
    "Violation",
    "Watcher",
    "__version__",
    "adversarial_examples",
    "check_gates",
    "drift",
    "evaluate",
    "load",
    "monitor_report",
    "register",
    "resume_job",
    "reweighing_weights",
    "start_job",
]


def register(model: object, *, name: str, **kwargs: Any) -> ModelVersion:
    """Register `model` in the default registry; see `Registry.register` for the options."""
    return _default_registry().register(model, name=name, **kwargs)


def load(ref: str | ModelRef, *, trust_pickle: bool = False) -> LoadedModel:
    """Load a version from the default registry (`'fraud@staging'`, `'fraud:3'`, `'fraud'`)."""
    return _default_registry().load(ref, trust_pickle=trust_pickle)
