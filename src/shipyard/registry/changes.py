"""The registry's changes to what exists: aliases, tags, descriptions, archive and delete.

`Registry` takes these methods from `RegistryChanges`; each is one transaction with its audit
entry, after the principal was allowed to make it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from shipyard.core.refs import ModelRef, check_alias, check_name, check_tag_key
from shipyard.errors import ConflictError, GateError, NotFoundError, RegistryError
from shipyard.registry.queries import (
    as_ref,
    move_alias,
    record_change,
    refuse_if_in_use,
    resolve,
    tag_target,
)
from shipyard.registry.records import ARCHIVED, LIVE, ModelVersion
from shipyard.registry.results import judge_alias_move
from shipyard.security.access import Action
from shipyard.store.metadata import utcnow
from shipyard.store.schema import aliases, model_versions, models, tags

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.store.artifacts import ArtifactStore
    from shipyard.store.metadata import MetadataStore

__all__ = ["RegistryChanges"]


class RegistryChanges:
    """Aliases, tags, descriptions, archive, restore and delete (mixed into `Registry`)."""

    meta: MetadataStore
    settings: Settings
    artifacts: ArtifactStore
    actor: str

    if TYPE_CHECKING:  # provided by Registry

        def allow(self, action: Action, model: str | None = None) -> None: ...

        def get(self, ref: str | ModelRef) -> ModelVersion: ...

    def set_alias(
        self, ref: str | ModelRef, alias: str, *, force: bool = False, reason: str | None = None
    ) -> ModelVersion:
        """Point `alias` at the version `ref` names (moving it if it points elsewhere).

        A protected alias (`Settings.protected_aliases`, `production` by default) moves only to a
        version whose newest gate result for it passed against the version it points at now.

        Args:
            ref: the version.
            alias: the alias to move.
            force: move a protected alias without a passing gate result; recorded with `reason`.
            reason: why the gates were overridden (required with `force`).

        Raises:
            ConflictError: the version is archived.
            GateError: the alias is protected and the version has no passing, current gate result.
        """
        check_alias(alias)
        parsed = as_ref(ref)
        self.allow(Action.OVERRIDE_GATES if force else Action.MOVE_ALIAS, parsed.name)
        if force and not (reason and reason.strip()):
            raise GateError(
                f"moving {alias!r} with force needs a reason, which is recorded with who moved it; "
                "e.g. --reason 'hotfix for incident 123'"
            )

        def change(conn: Connection) -> int:
            row = resolve(conn, parsed)
            if row.status != LIVE:
                raise ConflictError(
                    f"{row.name}:{row.version} is archived; an alias cannot point at an archived "
                    "version. Pick a live version"
                )
            detail = judge_alias_move(conn, self.settings, row, alias, force=force, reason=reason)
            move_alias(conn, row.model_id, alias, row.id, utcnow())
            self._record(conn, "alias", row.name, row.version, detail)
            return int(row.version)

        number = self.meta.write(change)
        return self.get(ModelRef(parsed.name, version=number))

    def remove_alias(self, name: str, alias: str, *, force: bool = False, reason: str | None = None) -> None:
        """Remove `alias` from model `name`.

        Removing a protected alias would let the next version be promoted with no champion to
        compare with, so it needs `force` and a reason, which are recorded.

        Raises:
            NotFoundError: the model has no such alias.
            GateError: the alias is protected and `force` or `reason` is missing.
        """
        check_name(name)
        self.allow(Action.OVERRIDE_GATES if force else Action.MOVE_ALIAS, name)
        check_alias(alias)
        protected = alias in self.settings.protected_aliases
        if protected and not (force and reason and reason.strip()):
            raise GateError(
                f"{alias!r} is a protected alias: removing it leaves the next promotion nothing to be "
                "compared with. Remove it with force and a reason (--force --reason TEXT), which "
                "are recorded"
            )

        def change(conn: Connection) -> None:
            row = resolve(conn, ModelRef(name, alias=alias))
            conn.execute(
                delete(aliases).where(and_(aliases.c.model_id == row.model_id, aliases.c.alias == alias))
            )
            detail: dict[str, Any] = {"alias": alias}
            if protected:
                detail |= {"forced": True, "reason": reason}
            self._record(conn, "unalias", name, row.version, detail)

        self.meta.write(change)

    def set_tag(self, ref: str | ModelRef, key: str, value: str) -> None:
        """Tag a version (`NAME:VERSION`, `NAME@ALIAS`) or, with a bare `NAME`, the model."""
        check_tag_key(key)
        parsed = as_ref(ref)
        self.allow(Action.EDIT, parsed.name)

        def change(conn: Connection) -> None:
            model_id, number = tag_target(conn, parsed)
            conn.execute(
                delete(tags).where(
                    and_(tags.c.model_id == model_id, tags.c.version == number, tags.c.key == key)
                )
            )
            conn.execute(insert(tags).values(model_id=model_id, version=number, key=key, value=str(value)))
            self._record(conn, "tag", parsed.name, number or None, {"key": key, "value": value})

        self.meta.write(change)

    def remove_tag(self, ref: str | ModelRef, key: str) -> None:
        """Remove a tag from a version or, with a bare `NAME`, from the model.

        Raises:
            NotFoundError: there is no such tag.
        """
        check_tag_key(key)
        parsed = as_ref(ref)
        self.allow(Action.EDIT, parsed.name)

        def change(conn: Connection) -> None:
            model_id, number = tag_target(conn, parsed)
            gone = conn.execute(
                delete(tags).where(
                    and_(tags.c.model_id == model_id, tags.c.version == number, tags.c.key == key)
                )
            )
            if gone.rowcount == 0:
                raise NotFoundError(f"{parsed} has no tag {key!r}")
            self._record(conn, "untag", parsed.name, number or None, {"key": key})

        self.meta.write(change)

    def set_description(self, ref: str | ModelRef, description: str) -> None:
        """Describe a version or, with a bare `NAME`, the model."""
        parsed = as_ref(ref)
        self.allow(Action.EDIT, parsed.name)

        def change(conn: Connection) -> None:
            model_id, number = tag_target(conn, parsed)
            if number:
                conn.execute(
                    update(model_versions)
                    .where(and_(model_versions.c.model_id == model_id, model_versions.c.version == number))
                    .values(description=description)
                )
            else:
                conn.execute(
                    update(models)
                    .where(models.c.id == model_id)
                    .values(description=description, updated_at=utcnow())
                )
            self._record(conn, "describe", parsed.name, number or None, {})

        self.meta.write(change)

    def archive(self, ref: str | ModelRef) -> ModelVersion:
        """Archive a version: hidden from `latest`, never loaded by alias, kept for the record.

        Raises:
            ConflictError: an alias points at the version.
        """
        parsed = as_ref(ref)
        self.allow(Action.ARCHIVE, parsed.name)

        def change(conn: Connection) -> int:
            row = resolve(conn, parsed)
            refuse_if_in_use(conn, row, "archive")
            conn.execute(update(model_versions).where(model_versions.c.id == row.id).values(status=ARCHIVED))
            self._record(conn, "archive", row.name, row.version, {})
            return int(row.version)

        number = self.meta.write(change)
        return self.get(ModelRef(parsed.name, version=number))

    def restore(self, ref: str | ModelRef) -> ModelVersion:
        """Bring an archived version back to live."""
        parsed = as_ref(ref)
        self.allow(Action.ARCHIVE, parsed.name)

        def change(conn: Connection) -> int:
            row = resolve(conn, parsed)
            conn.execute(update(model_versions).where(model_versions.c.id == row.id).values(status=LIVE))
            self._record(conn, "restore", row.name, row.version, {})
            return int(row.version)

        number = self.meta.write(change)
        return self.get(ModelRef(parsed.name, version=number))

    def delete(self, ref: str | ModelRef) -> None:
        """Delete a version and, when no other version shares it, its artifact.

        Raises:
            ConflictError: an alias points at the version.
        """
        parsed = as_ref(ref)
        self.allow(Action.DELETE, parsed.name)
        if parsed.is_latest:
            raise RegistryError(f"delete needs an explicit version (e.g. '{parsed.name}:3'), not {parsed}")

        def change(conn: Connection) -> str:
            row = resolve(conn, parsed)
            refuse_if_in_use(conn, row, "delete")
            conn.execute(
                delete(tags).where(and_(tags.c.model_id == row.model_id, tags.c.version == row.version))
            )
            conn.execute(delete(model_versions).where(model_versions.c.id == row.id))
            self._record(conn, "delete", row.name, row.version, {"digest": row.artifact_digest})
            return str(row.artifact_digest)

        digest = self.meta.write(change)
        with self.meta.read() as conn:
            shared = conn.execute(
                select(func.count())
                .select_from(model_versions)
                .where(model_versions.c.artifact_digest == digest)
            ).scalar_one()
        if not shared:
            self.artifacts.delete(digest)

    def _record(
        self, conn: Connection, action: str, model: str, version: int | None, detail: dict[str, Any]
    ) -> None:
        record_change(conn, action, actor=self.actor, model=model, version=version, detail=detail)
