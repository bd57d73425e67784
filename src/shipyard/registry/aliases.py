"""Aliases of a registry's models (`Registry.aliases`): move one to a version, remove one.

Each change is one transaction with its audit entry, after the principal was allowed to make
it. A protected alias moves only as `registry.results.judge_alias_move` allows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, delete

from shipyard.core.refs import ModelRef, check_alias, check_name
from shipyard.errors import ConflictError, GateError
from shipyard.registry.queries import as_ref, move_alias, read_version, record_change, resolve
from shipyard.registry.records import LIVE, ModelVersion
from shipyard.registry.results import judge_alias_move
from shipyard.security.access import Action
from shipyard.security.context import Context
from shipyard.store.metadata import utcnow
from shipyard.store.schema import aliases

__all__ = ["Aliases"]


class Aliases:
    """Point aliases at versions and remove them.

    Args:
        context: who acts, the settings (which aliases are protected) and the metadata store.
    """

    def __init__(self, context: Context) -> None:
        self.context = context

    def set(
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

        Returns:
            The version, with the alias.

        Raises:
            PermissionDeniedError: the principal may not move aliases (or override gates, with
                `force`).
            ConflictError: the version is archived.
            GateError: the alias is protected and the version has no passing, current gate result,
                or `force` comes without a reason.
        """
        check_alias(alias)
        parsed = as_ref(ref)
        context = self.context
        context.allow(Action.OVERRIDE_GATES if force else Action.MOVE_ALIAS, parsed.name)
        if force and not (reason and reason.strip()):
            raise GateError(
                f"moving {alias!r} with force needs a reason, which is recorded with who moved it; "
                "e.g. --reason 'hotfix for incident 123'"
            )

        def change(conn: Connection) -> ModelVersion:
            row = resolve(conn, parsed)
            if row.status != LIVE:
                raise ConflictError(
                    f"{row.name}:{row.version} is archived; an alias cannot point at an archived "
                    "version. Pick a live version"
                )
            detail = judge_alias_move(conn, context.settings, row, alias, force=force, reason=reason)
            move_alias(conn, row.model_id, alias, row.id, utcnow())
            record_change(
                conn, "alias", actor=context.actor, model=row.name, version=row.version, detail=detail
            )
            return read_version(conn, resolve(conn, ModelRef(row.name, version=row.version)))

        return context.meta.write(change)

    def remove(self, name: str, alias: str, *, force: bool = False, reason: str | None = None) -> None:
        """Remove `alias` from model `name`.

        Removing a protected alias would let the next version be promoted with no champion to
        compare with, so it needs `force` and a reason, which are recorded.

        Raises:
            PermissionDeniedError: the principal may not move aliases (or override gates, with
                `force`).
            NotFoundError: the model has no such alias.
            GateError: the alias is protected and `force` or `reason` is missing.
        """
        check_name(name)
        context = self.context
        context.allow(Action.OVERRIDE_GATES if force else Action.MOVE_ALIAS, name)
        check_alias(alias)
        protected = alias in context.settings.protected_aliases
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
            record_change(
                conn, "unalias", actor=context.actor, model=name, version=row.version, detail=detail
            )

        context.meta.write(change)
