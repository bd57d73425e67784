"""Tags and descriptions of a registry's models and versions (`Registry.tags`).

A reference with a version or alias (`fraud:2`, `fraud@staging`) names a version; a bare name
(`fraud`) names the model itself. Each change is one transaction with its audit entry, after the
principal was allowed to edit the model.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, delete, insert, update

from shipyard.core.refs import ModelRef, check_tag_key
from shipyard.errors import NotFoundError
from shipyard.registry.queries import as_ref, record_change, tag_target
from shipyard.security.access import Action
from shipyard.security.context import Context
from shipyard.store.metadata import utcnow
from shipyard.store.schema import model_versions, models, tags

__all__ = ["Tags"]


class Tags:
    """Set and remove tags, and describe models and versions.

    Args:
        context: who acts, and the metadata store.
    """

    def __init__(self, context: Context) -> None:
        self.context = context

    def set(self, ref: str | ModelRef, key: str, value: str) -> None:
        """Tag a version (`NAME:VERSION`, `NAME@ALIAS`) or, with a bare `NAME`, the model.

        Raises:
            PermissionDeniedError: the principal may not edit the model.
            NotFoundError: no such model or version.
        """
        parsed = self._checked(ref, key)
        context = self.context

        def change(conn: Connection) -> None:
            model_id, number = tag_target(conn, parsed)
            _delete_tag(conn, model_id, number, key)
            conn.execute(insert(tags).values(model_id=model_id, version=number, key=key, value=str(value)))
            detail = {"key": key, "value": value}
            record_change(
                conn, "tag", actor=context.actor, model=parsed.name, version=number or None, detail=detail
            )

        context.meta.write(change)

    def remove(self, ref: str | ModelRef, key: str) -> None:
        """Remove a tag from a version or, with a bare `NAME`, from the model.

        Raises:
            PermissionDeniedError: the principal may not edit the model.
            NotFoundError: there is no such tag.
        """
        parsed = self._checked(ref, key)
        context = self.context

        def change(conn: Connection) -> None:
            model_id, number = tag_target(conn, parsed)
            if not _delete_tag(conn, model_id, number, key):
                raise NotFoundError(f"{parsed} has no tag {key!r}")
            record_change(
                conn,
                "untag",
                actor=context.actor,
                model=parsed.name,
                version=number or None,
                detail={"key": key},
            )

        context.meta.write(change)

    def _checked(self, ref: str | ModelRef, key: str) -> ModelRef:
        """The reference, once the key is well formed and the principal may edit the model."""
        check_tag_key(key)
        parsed = as_ref(ref)
        self.context.allow(Action.EDIT, parsed.name)
        return parsed

    def describe(self, ref: str | ModelRef, description: str) -> None:
        """Describe a version or, with a bare `NAME`, the model.

        Raises:
            PermissionDeniedError: the principal may not edit the model.
            NotFoundError: no such model or version.
        """
        parsed = as_ref(ref)
        context = self.context
        context.allow(Action.EDIT, parsed.name)

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
            record_change(
                conn, "describe", actor=context.actor, model=parsed.name, version=number or None, detail={}
            )

        context.meta.write(change)


def _delete_tag(conn: Connection, model_id: int, number: int, key: str) -> bool:
    """Delete one tag of a model (`number` 0) or version; whether there was one."""
    gone = conn.execute(
        delete(tags).where(and_(tags.c.model_id == model_id, tags.c.version == number, tags.c.key == key))
    )
    return bool(gone.rowcount)
