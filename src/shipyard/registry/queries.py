"""The registry's SQL: resolving references and reading records, inside a caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, func, insert, select, update

from shipyard.core.contract import Contract
from shipyard.core.profile import Profile
from shipyard.core.refs import ModelRef
from shipyard.errors import ConflictError, NotFoundError
from shipyard.registry.records import LIVE, ModelVersion, RegisteredModel
from shipyard.security import audit
from shipyard.store.metadata import as_utc
from shipyard.store.schema import aliases, deployment_arms, deployments, model_versions, models, tags

__all__ = [
    "as_ref",
    "ensure_model",
    "move_alias",
    "no_model",
    "read_model",
    "read_version",
    "record_change",
    "refuse_if_in_use",
    "resolve",
    "tag_target",
    "version_query",
]


def ensure_model(conn: Connection, name: str, now: datetime) -> int:
    model_id = conn.execute(select(models.c.id).where(models.c.name == name)).scalar()
    if model_id is not None:
        return int(model_id)
    # A concurrent writer may insert the same name first; the unique key then raises
    # IntegrityError and MetadataStore.write retries the whole change.
    return int(
        conn.execute(
            insert(models)
            .values(name=name, description="", next_version=1, created_at=now, updated_at=now)
            .returning(models.c.id)
        ).scalar_one()
    )


def move_alias(conn: Connection, model_id: int, alias: str, version_id: int, now: datetime) -> None:
    moved = conn.execute(
        update(aliases)
        .where(and_(aliases.c.model_id == model_id, aliases.c.alias == alias))
        .values(version_id=version_id, updated_at=now)
    )
    if moved.rowcount == 0:
        conn.execute(
            insert(aliases).values(model_id=model_id, alias=alias, version_id=version_id, updated_at=now)
        )


def version_query() -> Any:
    return select(model_versions, models.c.name).join(models, models.c.id == model_versions.c.model_id)


def resolve(conn: Connection, ref: ModelRef) -> Row[Any]:
    query = version_query().where(models.c.name == ref.name)
    if ref.version is not None:
        row = conn.execute(query.where(model_versions.c.version == ref.version)).first()
    elif ref.alias is not None:
        row = conn.execute(
            query.join(aliases, aliases.c.version_id == model_versions.c.id).where(
                aliases.c.alias == ref.alias
            )
        ).first()
        if row is not None and row.status != LIVE:
            raise ConflictError(f"{ref} points at archived version {ref.name}:{row.version}")
    else:
        row = conn.execute(
            query.where(model_versions.c.status == LIVE).order_by(model_versions.c.version.desc()).limit(1)
        ).first()
    if row is None:
        raise NotFoundError(_not_found(conn, ref))
    return row


def _not_found(conn: Connection, ref: ModelRef) -> str:
    model_id = conn.execute(select(models.c.id).where(models.c.name == ref.name)).scalar()
    if model_id is None:
        return no_model(conn, ref.name)
    if ref.version is not None:
        numbers = conn.execute(
            select(model_versions.c.version)
            .where(model_versions.c.model_id == model_id)
            .order_by(model_versions.c.version)
        ).scalars()
        return f"model {ref.name!r} has no version {ref.version}; it has versions {list(numbers) or 'none'}"
    if ref.alias is not None:
        names = conn.execute(
            select(aliases.c.alias).where(aliases.c.model_id == model_id).order_by(aliases.c.alias)
        ).scalars()
        return f"model {ref.name!r} has no alias {ref.alias!r}; it has {list(names) or 'none'}"
    return f"model {ref.name!r} has no live version (all are archived or deleted)"


def no_model(conn: Connection, name: str) -> str:
    known = list(conn.execute(select(models.c.name).order_by(models.c.name).limit(20)).scalars())
    close = [k for k in known if k.lower().startswith(name[:3].lower())]
    hint = (
        f"; did you mean {close[0]!r}?"
        if close
        else (f"; registered models: {known}" if known else "; the registry is empty")
    )
    return f"no model named {name!r}{hint}"


def read_version(conn: Connection, row: Row[Any]) -> ModelVersion:
    alias_names = conn.execute(
        select(aliases.c.alias).where(aliases.c.version_id == row.id).order_by(aliases.c.alias)
    ).scalars()
    tag_rows = conn.execute(
        select(tags.c.key, tags.c.value)
        .where(and_(tags.c.model_id == row.model_id, tags.c.version == row.version))
        .order_by(tags.c.key)
    ).all()
    return ModelVersion(
        name=row.name,
        version=row.version,
        status=row.status,
        flavor=row.flavor,
        artifact_digest=row.artifact_digest,
        artifact_size=row.artifact_size,
        contract=Contract.from_dict(row.contract),
        profile=Profile.from_dict(row.profile) if row.profile else None,
        metrics=row.metrics,
        lineage=row.lineage,
        description=row.description,
        created_at=as_utc(row.created_at),
        aliases=tuple(alias_names),
        tags=dict(tag_rows),
        explanation=row.explanation,
    )


def read_model(conn: Connection, row: Row[Any]) -> RegisteredModel:
    counts = conn.execute(
        select(
            func.count(), func.max(model_versions.c.version).filter(model_versions.c.status == LIVE)
        ).where(model_versions.c.model_id == row.id)
    ).one()
    alias_rows = conn.execute(
        select(aliases.c.alias, model_versions.c.version)
        .join(model_versions, model_versions.c.id == aliases.c.version_id)
        .where(aliases.c.model_id == row.id)
        .order_by(aliases.c.alias)
    ).all()
    tag_rows = conn.execute(
        select(tags.c.key, tags.c.value)
        .where(and_(tags.c.model_id == row.id, tags.c.version == 0))
        .order_by(tags.c.key)
    ).all()
    return RegisteredModel(
        name=row.name,
        description=row.description,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        latest_version=counts[1],
        version_count=counts[0],
        aliases=dict(alias_rows),
        tags=dict(tag_rows),
    )


def tag_target(conn: Connection, ref: ModelRef) -> tuple[int, int]:
    if ref.is_latest:
        model_id = conn.execute(select(models.c.id).where(models.c.name == ref.name)).scalar()
        if model_id is None:
            raise NotFoundError(no_model(conn, ref.name))
        return int(model_id), 0
    row = resolve(conn, ref)
    return int(row.model_id), int(row.version)


def refuse_if_in_use(conn: Connection, row: Row[Any], verb: str) -> None:
    """Refuse to archive or delete a version an alias points at or a deployment serves."""
    names = list(
        conn.execute(
            select(aliases.c.alias).where(aliases.c.version_id == row.id).order_by(aliases.c.alias)
        ).scalars()
    )
    if names:
        raise ConflictError(
            f"cannot {verb} {row.name}:{row.version}: alias(es) {names} point at it; move them "
            f"to another version or remove them first ('shipyard models unalias "
            f"{row.name}@{names[0]}')"
        )
    serving = conn.execute(
        select(deployments.c.name, deployment_arms.c.role)
        .join(deployment_arms, deployment_arms.c.deployment_id == deployments.c.id)
        .where(deployments.c.model == row.name, deployment_arms.c.version == row.version)
        .order_by(deployments.c.name)
    ).all()
    if serving:
        arms = ", ".join(f"{name} ({role})" for name, role in serving)
        raise ConflictError(
            f"cannot {verb} {row.name}:{row.version}: deployment(s) {arms} serve it; roll another "
            f"version out to them, or abort their rollout, first ('shipyard deploy show {serving[0][0]}')"
        )


def as_ref(ref: str | ModelRef) -> ModelRef:
    """A reference, parsed when it is text.

    Raises:
        RefError: the text is not a reference.
    """
    return ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)


def record_change(
    conn: Connection, action: str, *, actor: str, model: str, version: int | None, detail: dict[str, Any]
) -> None:
    """Append one entry about a model to the audit log, in the caller's transaction."""
    target = model if version is None else f"{model}:{version}"
    audit.append(conn, action, actor=actor, target=target, model=model, version=version, detail=detail)
