"""Shipyard: take a trained model from a notebook to production and keep it healthy there.

import shipyard
v = shipyard.register(model, name="fraud", train_data=df, target="label")
p = shipyard.load("fraud@staging")
p.predict(rows)
x = shipyard.explain("fraud@staging", rows)  # why: attributions per row, feature and class
e = shipyard.evaluate("fraud:2", "holdout.parquet", target="label")
x = shipyard.export("fraud:2", out="edge/")   # ONNX, written only when it answers as fraud:2
g = shipyard.check_gates("fraud:2", "gates.yaml")
m = shipyard.monitor_report(None, "fraud@production", window=timedelta(hours=6))
d = shipyard.drift(train_df, todays_df)
train = shipyard.datasets.make_credit(5000)    # synthetic data to try it on
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from shipyard.config import Settings
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
    ExplanationError,
    ExportError,
    FeedbackError,
    FlavorError,
    GateError,
    InputError,
    MissingDependencyError,
    MonitorConfigError,
    MonitoringError,
    NotFoundError,
    NotReadyError,
    ParityError,
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
    UnresumableJobError,
    UnsupportedExplanationError,
    UnsupportedExportError,
    UnsupportedMediaError,
    UntrustedArtifactError,
)

if TYPE_CHECKING:
    from shipyard import datasets
    from shipyard.batch.jobs import Jobs
    from shipyard.batch.run import BatchOptions, resume_job, start_job
    from shipyard.core.batch import Batch, Predictions
    from shipyard.core.contract import Contract, Feature
    from shipyard.core.dtypes import DType
    from shipyard.core.profile import Profile
    from shipyard.core.refs import ModelRef
    from shipyard.core.validation import Validation, Violation
    from shipyard.edge.export import ExportResult, export
    from shipyard.edge.parity import Holdout, ParityReport
    from shipyard.evaluation.evaluate import evaluate
    from shipyard.evaluation.gates import GateResult, check_gates
    from shipyard.evaluation.mitigation import reweighing_weights
    from shipyard.evaluation.policy import Policy
    from shipyard.evaluation.result import Evaluation
    from shipyard.evaluation.robustness import RobustnessSettings, adversarial_examples
    from shipyard.explanations.explaining import Explanation, explain
    from shipyard.monitoring.alerts import AlertBook, Rule
    from shipyard.monitoring.drift import DriftReport, drift
    from shipyard.monitoring.feedback import FeedbackStore
    from shipyard.monitoring.monitor import MonitorReport, monitor_report
    from shipyard.monitoring.thresholds import DriftSettings, Thresholds
    from shipyard.monitoring.watch import Watcher
    from shipyard.registry import Change, LoadedModel, ModelVersion, RegisteredModel, Registry
    from shipyard.rollout.analysis import Verdict
    from shipyard.rollout.controller import Controller
    from shipyard.rollout.deployments import Arm, Deployment, Deployments
    from shipyard.rollout.plan import AnalysisRules, Plan
    from shipyard.rollout.rollouts import Rollout, Rollouts
    from shipyard.scheduling.schedules import Schedules
    from shipyard.security.access import Action, Principal, Role
    from shipyard.security.audit import AuditLog
    from shipyard.security.keys import Keys
    from shipyard.security.signing import SigningKey, TrustedKeys
    from shipyard.serving.client import Client, ServedExplanation, ServedPrediction

# The public names beyond errors and settings, by the module that defines them. They are
# imported on first use (PEP 562), so `import shipyard` and the CLI's start stay fast: a
# command pays for pandas, scikit-learn or SciPy only when it uses them.
_LAZY: dict[str, str] = {
    "Action": "shipyard.security.access",
    "AlertBook": "shipyard.monitoring.alerts",
    "AnalysisRules": "shipyard.rollout.plan",
    "Arm": "shipyard.rollout.deployments",
    "AuditLog": "shipyard.security.audit",
    "Batch": "shipyard.core.batch",
    "BatchOptions": "shipyard.batch.run",
    "Change": "shipyard.registry",
    "Client": "shipyard.serving.client",
    "Contract": "shipyard.core.contract",
    "Controller": "shipyard.rollout.controller",
    "DType": "shipyard.core.dtypes",
    "Deployment": "shipyard.rollout.deployments",
    "Deployments": "shipyard.rollout.deployments",
    "DriftReport": "shipyard.monitoring.drift",
    "DriftSettings": "shipyard.monitoring.thresholds",
    "Evaluation": "shipyard.evaluation.result",
    "ExportResult": "shipyard.edge.export",
    "Explanation": "shipyard.explanations.explaining",
    "Feature": "shipyard.core.contract",
    "FeedbackStore": "shipyard.monitoring.feedback",
    "GateResult": "shipyard.evaluation.gates",
    "Holdout": "shipyard.edge.parity",
    "Jobs": "shipyard.batch.jobs",
    "Keys": "shipyard.security.keys",
    "LoadedModel": "shipyard.registry",
    "ModelRef": "shipyard.core.refs",
    "ModelVersion": "shipyard.registry",
    "MonitorReport": "shipyard.monitoring.monitor",
    "ParityReport": "shipyard.edge.parity",
    "Plan": "shipyard.rollout.plan",
    "Policy": "shipyard.evaluation.policy",
    "Predictions": "shipyard.core.batch",
    "Principal": "shipyard.security.access",
    "Profile": "shipyard.core.profile",
    "RegisteredModel": "shipyard.registry",
    "Registry": "shipyard.registry",
    "RobustnessSettings": "shipyard.evaluation.robustness",
    "Role": "shipyard.security.access",
    "Rollout": "shipyard.rollout.rollouts",
    "Rollouts": "shipyard.rollout.rollouts",
    "Rule": "shipyard.monitoring.alerts",
    "Schedules": "shipyard.scheduling.schedules",
    "ServedExplanation": "shipyard.serving.client",
    "ServedPrediction": "shipyard.serving.client",
    "SigningKey": "shipyard.security.signing",
    "Thresholds": "shipyard.monitoring.thresholds",
    "TrustedKeys": "shipyard.security.signing",
    "Validation": "shipyard.core.validation",
    "Verdict": "shipyard.rollout.analysis",
    "Violation": "shipyard.core.validation",
    "Watcher": "shipyard.monitoring.watch",
    "adversarial_examples": "shipyard.evaluation.robustness",
    "check_gates": "shipyard.evaluation.gates",
    "drift": "shipyard.monitoring.drift",
    "evaluate": "shipyard.evaluation.evaluate",
    "explain": "shipyard.explanations.explaining",
    "export": "shipyard.edge.export",
    "monitor_report": "shipyard.monitoring.monitor",
    "resume_job": "shipyard.batch.run",
    "reweighing_weights": "shipyard.evaluation.mitigation",
    "start_job": "shipyard.batch.run",
}

# Public submodules, also imported on first use: `shipyard.datasets.make_credit(...)`.
_SUBMODULES = ("datasets",)

__version__ = "0.1.0"

__all__ = [
    "Action",
    "AlertBook",
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
    "Explanation",
    "ExplanationError",
    "ExportError",
    "ExportResult",
    "Feature",
    "FeedbackError",
    "FeedbackStore",
    "FlavorError",
    "GateError",
    "GateResult",
    "Holdout",
    "InputError",
    "Jobs",
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
    "ParityError",
    "ParityReport",
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
    "Schedules",
    "SecurityError",
    "ServedExplanation",
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
    "UnresumableJobError",
    "UnsupportedExplanationError",
    "UnsupportedExportError",
    "UnsupportedMediaError",
    "UntrustedArtifactError",
    "Validation",
    "Verdict",
    "Violation",
    "Watcher",
    "__version__",
    "adversarial_examples",
    "check_gates",
    "datasets",
    "drift",
    "evaluate",
    "explain",
    "export",
    "load",
    "monitor_report",
    "register",
    "resume_job",
    "reweighing_weights",
    "start_job",
]


def register(model: object, *, name: str, **kwargs: Any) -> ModelVersion:
    """Register `model` in the default registry; see `Registry.register` for the options."""
    from shipyard.registry.default import default_registry

    return default_registry().register(model, name=name, **kwargs)


def load(ref: str | ModelRef, *, trust_pickle: bool = False) -> LoadedModel:
    """Load a version from the default registry (`'fraud@staging'`, `'fraud:3'`, `'fraud'`)."""
    from shipyard.registry.default import default_registry

    return default_registry().load(ref, trust_pickle=trust_pickle)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    if name in _SUBMODULES:
        submodule = importlib.import_module(f"shipyard.{name}")
        globals()[name] = submodule
        return submodule
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
