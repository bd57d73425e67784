"""What registering a version does below the checks: prepare it, then write it in one transaction.

`prepare_version` saves the model through its flavor, loads it back (so an artifact that cannot
be loaded is never registered), infers the contract and the reference profile from the training
data and gathers the lineage. `insert_version` stores the artifact by digest, then writes every
row (version, tags, alias, audit entries) in one transaction. `Registry.register` and
`Registry.edit_contract` check and authorize, then call these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, update

from shipyard.attribution.summary import summarize
from shipyard.core.batch import Batch, Task
from shipyard.core.contract import Contract
from shipyard.core.inference import infer_contract
from shipyard.core.profile import Profile
from shipyard.errors import ContractError
from shipyard.flavors import pack, unpack
from shipyard.flavors.base import Flavor, LoadOptions, SavedModel
from shipyard.registry.lineage import environment, fingerprint, git_state
from shipyard.registry.queries import ensure_model, move_alias, record_change
from shipyard.registry.records import LIVE
from shipyard.registry.training import (
    check_feature_names,
    reference_profile,
    split_training,
    task_and_classes,
)
from shipyard.security.context import Context
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.metadata import utcnow
from shipyard.store.schema import model_versions, models, tags

__all__ = ["NewVersion", "insert_version", "prepare_version", "without_pii"]


@dataclass(frozen=True)
class NewVersion:
    """Everything a new version's rows hold, before it has a number."""

    flavor: str
    artifact: bytes
    contract: Contract
    profile: Profile | None
    lineage: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    explanation: dict[str, Any] | None = None


def prepare_version(
    chosen: Flavor,
    model: object,
    *,
    name: str,
    actor: str,
    train_data: Any,
    target: str | None,
    task: Task | None,
    contract: Contract | None,
    params: Mapping[str, Any] | None,
    trusted_types: Sequence[str],
    trust_pickle: bool,
    metrics: Mapping[str, Any] | None = None,
    description: str = "",
    version_tags: Mapping[str, str] | None = None,
) -> NewVersion:
    """Save `model` through `chosen`, load it back, and infer its contract, profile and lineage.

    Returns:
        The new version: packed artifact, contract, reference profile (None without training
        data), lineage, and the metrics, description and tags given.

    Raises:
        FlavorError: the model does not load back.
        ContractError: the training data or contract is unusable.
    """
    # The round trip below loads bytes this process just made from `model`: signed by nature.
    options = LoadOptions(trust_pickle=trust_pickle, trusted_types=tuple(trusted_types), signed=True)
    features, labels = split_training(train_data, target)
    saved = chosen.save(model)
    resolved_task, classes = task_and_classes(saved.meta, task, labels, contract)
    meta = dict(saved.meta) | {"task": resolved_task, "classes": classes}
    if trusted_types:
        meta["trusted_types"] = sorted(set(trusted_types))
    saved = SavedModel(saved.flavor, saved.files, meta)
    if contract is None:
        if features is None:
            raise ContractError(
                f"registering {name!r} needs train_data (to infer the contract) or a contract"
            )
        contract = infer_contract(features, task=resolved_task, target=target, classes=classes)
    check_feature_names(meta.get("feature_names"), contract)
    artifact = pack(saved)
    loaded = chosen.load(unpack(artifact), options)
    profile = None
    explanation = None
    if features is not None:
        profile = reference_profile(name, contract, features, loaded)
        explanation = summarize(loaded, contract=contract, meta=meta, features=features)
    lineage: dict[str, Any] = {
        "flavor": chosen.name,
        "framework": meta.get("framework"),
        "framework_version": meta.get("framework_version"),
        "params": dict(meta.get("params") or {}) | dict(params or {}),
        "environment": environment(),
        "git": git_state(),
        "registered_by": actor,
    }
    if features is not None:
        whole = (
            features
            if labels is None or target is None
            else Batch({**features.columns, target: labels}, features.n_rows)
        )
        lineage["training_data"] = {
            "fingerprint": fingerprint(whole),
            "rows": features.n_rows,
            "columns": list(features.names),
        }
    return NewVersion(
        chosen.name,
        artifact,
        contract,
        profile,
        lineage,
        metrics=dict(metrics or {}),
        description=description,
        tags=dict(version_tags or {}),
        explanation=explanation,
    )


def insert_version(
    context: Context, artifacts: ArtifactStore, name: str, new: NewVersion, *, alias: str | None, action: str
) -> int:
    """Store the artifact, then write the version's rows in one transaction; its number.

    The blob goes first: a crash after it leaves an unreferenced blob, never a row that points
    at nothing.

    Raises:
        StoreUnavailableError: the metadata store is locked or unreachable.
    """
    digest = artifacts.put(new.artifact)
    now = utcnow()
    profile_data = new.profile.to_dict() if new.profile is not None else None
    actor = context.actor

    def change(conn: Connection) -> int:
        model_id = ensure_model(conn, name, now)
        number = (
            conn.execute(
                update(models)
                .where(models.c.id == model_id)
                .values(next_version=models.c.next_version + 1, updated_at=now)
                .returning(models.c.next_version)
            ).scalar_one()
            - 1
        )
        version_id = conn.execute(
            insert(model_versions)
            .values(
                model_id=model_id,
                version=number,
                status=LIVE,
                flavor=new.flavor,
                artifact_digest=digest,
                artifact_size=len(new.artifact),
                contract=new.contract.to_dict(),
                profile=profile_data,
                explanation=new.explanation,
                metrics=new.metrics,
                lineage=new.lineage,
                description=new.description,
                created_at=now,
            )
            .returning(model_versions.c.id)
        ).scalar_one()
        for key, value in new.tags.items():
            conn.execute(insert(tags).values(model_id=model_id, version=number, key=key, value=str(value)))
        detail = {"digest": digest, "flavor": new.flavor}
        record_change(conn, action, actor=actor, model=name, version=number, detail=detail)
        if alias is not None:
            move_alias(conn, model_id, alias, version_id, now)
            record_change(
                conn, "alias", actor=actor, model=name, version=number, detail={"alias": alias, "from": None}
            )
        return int(number)

    return int(context.meta.write(change))


def without_pii(profile: Profile | None, contract: Contract) -> Profile | None:
    """The profile without the features the contract marks pii: their values are not kept."""
    pii = set(contract.pii_masks)
    if profile is None or not pii & set(profile.features):
        return profile
    kept = {name: column for name, column in profile.features.items() if name not in pii}
    return Profile(profile.rows, kept, profile.outputs)
