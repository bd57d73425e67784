"""The registry's records: a version, a registered model, a recorded change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shipyard.core.contract import Contract
from shipyard.core.profile import Profile
from shipyard.core.refs import ModelRef
from shipyard.security.signing import manifest

__all__ = [
    "ARCHIVED",
    "LIVE",
    "Change",
    "EvaluationRecord",
    "GateRecord",
    "ModelVersion",
    "RegisteredModel",
    "version_manifest",
]

LIVE = "live"
ARCHIVED = "archived"


@dataclass(frozen=True, kw_only=True)
class ModelVersion:
    """One immutable registered version of a model."""

    name: str
    version: int
    status: str
    flavor: str
    artifact_digest: str
    artifact_size: int
    contract: Contract
    profile: Profile | None
    metrics: Mapping[str, Any]
    lineage: Mapping[str, Any]
    description: str
    created_at: datetime
    aliases: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    explanation: Mapping[str, Any] | None = None
    """The background sample and global importance computed at registration
    (`shipyard.attribution.summary`), or None."""

    @property
    def importance(self) -> dict[str, float] | None:
        """Mean |attribution| per feature on a sample of the training data, if it was computed."""
        if not self.explanation or not self.explanation.get("importance"):
            return None
        return {str(k): float(v) for k, v in self.explanation["importance"].items()}

    @property
    def ref(self) -> ModelRef:
        """`NAME:VERSION` of this version."""
        return ModelRef(self.name, version=self.version)

    def to_dict(self, *, profile: bool = False) -> dict[str, Any]:
        """The version as JSON-safe data (the profile only when asked: it is large)."""
        data: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "ref": str(self.ref),
            "status": self.status,
            "flavor": self.flavor,
            "task": self.contract.task,
            "artifact_digest": self.artifact_digest,
            "artifact_size": self.artifact_size,
            "aliases": list(self.aliases),
            "tags": dict(self.tags),
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "metrics": dict(self.metrics),
            "lineage": dict(self.lineage),
            "contract": self.contract.to_dict(),
        }
        if self.explanation:
            data["importance"] = self.importance
            data["importance_method"] = self.explanation.get("method")
        if profile and self.profile is not None:
            data["profile"] = self.profile.to_dict()
        return data


@dataclass(frozen=True, kw_only=True)
class RegisteredModel:
    """A model name and the state of its versions."""

    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    latest_version: int | None
    version_count: int
    aliases: Mapping[str, int]
    tags: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        """The model as JSON-safe data."""
        return {
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "latest_version": self.latest_version,
            "version_count": self.version_count,
            "aliases": dict(self.aliases),
            "tags": dict(self.tags),
        }


@dataclass(frozen=True, kw_only=True)
class Change:
    """One recorded change to the registry."""

    id: int
    at: datetime
    actor: str
    action: str
    model: str
    version: int | None
    detail: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The change as JSON-safe data."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "model": self.model,
            "version": self.version,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True, kw_only=True)
class EvaluationRecord:
    """A stored evaluation of a version on a data set."""

    id: int
    name: str
    version: int
    created_at: datetime
    actor: str
    data_fingerprint: str
    rows: int
    body: Mapping[str, Any]

    @property
    def ref(self) -> ModelRef:
        """`NAME:VERSION` of the version evaluated."""
        return ModelRef(self.name, version=self.version)


@dataclass(frozen=True, kw_only=True)
class GateRecord:
    """A stored gate result: a version checked against a policy for an alias."""

    id: int
    name: str
    version: int
    created_at: datetime
    actor: str
    alias: str
    champion_version: int | None
    policy_digest: str
    passed: bool
    body: Mapping[str, Any]

    @property
    def ref(self) -> ModelRef:
        """`NAME:VERSION` of the version checked."""
        return ModelRef(self.name, version=self.version)


def version_manifest(version: ModelVersion) -> bytes:
    """The bytes a signature of `version` covers (here, beside the record, so that a bundle's
    reader checks a signature without the metadata store's modules)."""
    return manifest(
        name=version.name,
        version=version.version,
        flavor=version.flavor,
        artifact_digest=version.artifact_digest,
        artifact_size=version.artifact_size,
        contract=version.contract.to_dict(),
    )
