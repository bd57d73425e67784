"""Who acts, where: the one small context every store of the public API takes.

A store (`Registry`, `Keys`, `AuditLog`, `Jobs`, `Schedules`, `FeedbackStore`, `AlertBook`,
`Deployments`, `Rollouts`, ...) is handed a `Context` and checks each action itself with
`context.allow(...)`, so the Python API is guarded exactly as the CLI and the servers are.
A refusal is written to the audit log before it is raised.

A store takes the context itself or anything that holds one (a `Registry`: `Deployments(reg)`),
and keeps only the context: it never holds the object that handed it over.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from shipyard.config import Settings
from shipyard.errors import PermissionDeniedError
from shipyard.security.access import Action, Principal, Role, authorize
from shipyard.security.audit import deny
from shipyard.store.metadata import MetadataStore

__all__ = ["Context", "HasContext", "context_of"]


@dataclass(frozen=True)
class Context:
    """Settings, the metadata store, and the principal who acts.

    Attributes:
        settings: where the stores are.
        meta: the open metadata store (the context does not own it unless it opened it).
        principal: who acts; every `allow` checks its role and model scope.
        actor: the name written to the audit log and to the rows a change writes
            (the principal's name unless a caller names itself, as the scheduler does).
    """

    settings: Settings
    meta: MetadataStore
    principal: Principal
    actor: str

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        *,
        principal: Principal | None = None,
        actor: str | None = None,
    ) -> Context:
        """Open the metadata store of `settings` and find who acts.

        The principal is `security.identity.acting_principal` unless given: the key in
        `SHIPYARD_API_KEY`, or the OS user as admin, narrowed by `SHIPYARD_RUN_AS`.
        Close it with `close()` (or use it in a `with` block).
        """
        from shipyard.security.identity import acting_principal  # it verifies keys, which take contexts

        settings = settings or Settings.from_env()
        meta = MetadataStore(settings.db_url, busy_timeout=settings.db_timeout, file_mode=settings.file_mode)
        try:
            who = principal or acting_principal(meta, settings, actor=actor)
        except BaseException:
            meta.close()
            raise
        return cls(settings, meta, who, actor or who.name)

    @classmethod
    def system(cls, settings: Settings, meta: MetadataStore, *, actor: str) -> Context:
        """A context for a server process whose every caller was admitted on entry.

        A server's `Guard` authorizes each request's own principal before the request reaches
        a store (labels posted to `/v1/feedback` need the feedback role of the request's key),
        so the stores the server holds act as the system, an admin named `actor`, recorded
        under that name unless a call names the request's principal. Nothing a user runs gets
        this context: the CLI and the Python API act as `acting_principal`.
        """
        return cls(settings, meta, Principal(actor, Role.ADMIN, via="system"), actor)

    def allow(self, action: Action, model: str | None = None) -> None:
        """Go on if the principal may do `action` (on `model`); else record the denial in the
        audit log and raise.

        Raises:
            PermissionDeniedError: the role or the model scope does not allow it.
        """
        try:
            authorize(self.principal, action, model)
        except PermissionDeniedError as exc:
            who = self.principal
            detail = {"role": str(who.role), "via": who.via, "reason": str(exc)}
            deny(self.meta, who.name, action, model, detail)
            raise

    def acting_as(self, actor: str) -> Context:
        """The same principal, recorded under another actor's name (a controller, a scheduler)."""
        return replace(self, actor=actor)

    def close(self) -> None:
        """Release the metadata store's connections."""
        self.meta.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HasContext(Protocol):
    """Anything that holds a context, such as a `Registry`."""

    @property
    def context(self) -> Context:
        """The context it acts in."""
        ...


def context_of(source: Context | HasContext) -> Context:
    """The context itself, or the one `source` holds (`Keys(reg)` and `Keys(reg.context)` agree)."""
    return source if isinstance(source, Context) else source.context
