"""The life of a registry's versions (`Registry.lifecycle`): archive, restore, delete.

Each change is one transaction with its audit entry, after the principal was allowed to make
it. A version an alias points at, or a deployment serves, is neither archived nor deleted.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, delete, func, select, update

from shipyard.core.refs import ModelRef
from shipyard.errors import RegistryError
from shipyard.registry.queries import as_ref, read_version, record_change, refuse_if_in_use, resolve
from shipyard.registry.records import ARCHIVED, LIVE, ModelVersion
from shipyard.security.access import Action
from shipyard.security.context import Context
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.schema import model_versions, tags

__all__ = ["Lifecycle"]


class Lifecycle:
    """Archive, restore and delete versions.

    Args:
        context: who acts, and the metadata store.
        artifacts: the artifact store (a deleted version's artifact goes when no other uses it).
    """

    def __init__(self, context: Context, artifacts: ArtifactStore) -> None:
        self.context = context
        self.artifacts = artifacts

    def archive(self, ref: str | ModelRef) -> ModelVersion:
        """Archive a version: hidden from `latest`, never loaded by alias, kept for the record.

        Raises:
            PermissionDeniedError: the principal may not archive.
            ConflictError: an alias points at the version, or a deployment serves it.
        """
        return self._set_status(ref, ARCHIVED, "archive")

    def restore(self, ref: str | ModelRef) -> ModelVersion:
        """Bring an archived version back to live.

        Raises:
            PermissionDeniedError: the principal may not archive.
        """
        return self._set_status(ref, LIVE, "restore")

    def _set_status(self, ref: str | ModelRef, status: str, action: str) -> ModelVersion:
        parsed = as_ref(ref)
        context = self.context
        context.allow(Action.ARCHIVE, parsed.name)
        actor = context.actor

        def change(conn: Connection) -> int:
            row = resolve(conn, parsed)
            if status == ARCHIVED:
                refuse_if_in_use(conn, row, action)
            conn.execute(update(model_versions).where(model_versions.c.id == row.id).values(status=status))
            record_change(conn, action, actor=actor, model=row.name, version=row.version, detail={})
            return int(row.version)

        number = context.meta.write(change)
        return _read(context, ModelRef(parsed.name, version=number))

    def delete(self, ref: str | ModelRef) -> None:
        """Delete a version and, when no other version shares it, its artifact.

        Raises:
            PermissionDeniedError: the principal may not delete.
            RegistryError: the reference names no explicit version.
            ConflictError: an alias points at the version, or a deployment serves it.
        """
        parsed = as_ref(ref)
        context = self.context
        context.allow(Action.DELETE, parsed.name)
        if parsed.is_latest:
            raise RegistryError(f"delete needs an explicit version (e.g. '{parsed.name}:3'), not {parsed}")
        actor = context.actor

        def change(conn: Connection) -> str:
            row = resolve(conn, parsed)
            refuse_if_in_use(conn, row, "delete")
            conn.execute(
                delete(tags).where(and_(tags.c.model_id == row.model_id, tags.c.version == row.version))
            )
            conn.execute(delete(model_versions).where(model_versions.c.id == row.id))
            detail = {"digest": row.artifact_digest}
            record_change(conn, "delete", actor=actor, model=row.name, version=row.version, detail=detail)
            return str(row.artifact_digest)

        digest = context.meta.write(change)
        with context.meta.read() as conn:
            shared = conn.execute(
                select(func.count())
                .select_from(model_versions)
                .where(model_versions.c.artifact_digest == digest)
            ).scalar_one()
        if not shared:
            self.artifacts.delete(digest)


def _read(context: Context, ref: ModelRef) -> ModelVersion:
    with context.meta.read() as conn:
        return read_version(conn, resolve(conn, ref))
