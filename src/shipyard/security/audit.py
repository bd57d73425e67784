"""The audit log: every change, append-only, each entry chained to the one before by its hash.

An entry holds a sequence number, the time, the actor, the action, its target (a model, version,
deployment, key...), details, the hash of the previous entry and its own hash: SHA-256 over all
of those. `AuditLog.verify` recomputes the chain: an edited entry no longer matches its hash, a
deleted one breaks the sequence and the next entry's link, and an inserted one breaks both too.
Deleting the newest entries leaves a shorter chain that is still whole, so `verify` reports the
head (sequence and hash) for you to keep elsewhere and compare (`--expect-head`).

Entries are appended in the caller's transaction (`append`), so a change and its entry are
written together or not at all. Write transactions queue (`MetadataStore.write`), so `append`
reads the newest head. Should two writers still race for a sequence number (one outside the
queue), they collide on its unique key and the store runs the loser's whole change again,
re-reading the head.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select

from shipyard.core.hashchain import GENESIS, canonical, entry_hash
from shipyard.security.access import Action
from shipyard.store.metadata import MetadataStore, as_utc, utcnow
from shipyard.store.schema import audit_log

if TYPE_CHECKING:
    from shipyard.security.context import Context, HasContext

__all__ = ["GENESIS", "AuditEntry", "AuditLog", "AuditReport", "append", "deny", "entry_hash"]

_COLUMNS = ("seq", "at", "actor", "action", "target", "model", "version", "detail", "prev_hash", "hash")


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One recorded change (or denied attempt)."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    model: str | None
    version: int | None
    detail: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-safe data."""
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "model": self.model,
            "version": self.version,
            "detail": dict(self.detail),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class AuditReport:
    """What `verify` found: whether the chain is whole, how long it is, and its head."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "problem": self.problem,
        }


def append(
    conn: Connection,
    action: str,
    *,
    actor: str,
    target: str,
    model: str | None = None,
    version: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction and return it."""
    head = conn.execute(
        select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    ).first()
    seq, prev = (1, GENESIS) if head is None else (int(head.seq) + 1, str(head.hash))
    clean = json.loads(canonical(detail or {}))
    at = utcnow()
    digest = entry_hash(
        seq=seq, at=at, actor=actor, action=action, target=target, model=model, version=version,
        detail=clean, prev_hash=prev,
    )  # fmt: skip
    entry = AuditEntry(
        seq=seq, at=at, actor=actor, action=action, target=target, model=model, version=version,
        detail=clean, prev_hash=prev, hash=digest,
    )  # fmt: skip
    conn.execute(insert(audit_log).values(**{k: getattr(entry, k) for k in _COLUMNS}))
    return entry


def deny(meta: MetadataStore, actor: str, action: str, target: str | None, detail: Mapping[str, Any]) -> None:
    """Record a refused attempt, in a transaction of its own (nothing else was written)."""

    def change(conn: Connection) -> None:
        append(conn, "denied", actor=actor, target=target or action, detail={"action": action, **detail})

    meta.write(change)


class AuditLog:
    """Read and verify the audit log of a metadata store: an admin's store.

    Args:
        context: who acts (each action needs the audit role), and the metadata store; or
            anything holding one, such as a `Registry`.
    """

    def __init__(self, context: Context | HasContext) -> None:
        from shipyard.security.context import context_of  # the context denies through this module

        self.context = context_of(context)
        self.meta = self.context.meta

    def list(
        self,
        *,
        since: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        model: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """The newest entries first, filtered.

        Raises:
            PermissionDeniedError: the principal may not read the audit log.
        """
        self.context.allow(Action.AUDIT)
        query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        if actor is not None:
            query = query.where(audit_log.c.actor == actor)
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if model is not None:
            query = query.where(audit_log.c.model == model)
        with self.meta.read() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def head(self) -> tuple[int, str]:
        """The newest entry's sequence number and hash; (0, GENESIS) when the log is empty.

        Raises:
            PermissionDeniedError: the principal may not read the audit log.
        """
        self.context.allow(Action.AUDIT)
        with self.meta.read() as conn:
            row = conn.execute(
                select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
            ).first()
        return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))

    def verify(self, *, expect_head: str | None = None) -> AuditReport:
        """Recompute the whole chain; the report names the first entry that does not hold.

        Args:
            expect_head: a head hash kept from an earlier `verify`; the chain must still hold
                the entry it names (entries deleted from the end are caught this way).

        Raises:
            PermissionDeniedError: the principal may not read the audit log.
        """
        self.context.allow(Action.AUDIT)
        count, seq, prev = 0, 0, GENESIS
        seen_expected = expect_head is None or expect_head == GENESIS
        for entry in self._all():
            count += 1
            problem = _check(entry, seq + 1, prev)
            if problem:
                return AuditReport(False, count, seq, prev, problem)
            seq, prev = entry.seq, entry.hash
            seen_expected = seen_expected or entry.hash == expect_head
        if not seen_expected:
            return AuditReport(
                False, count, seq, prev,
                f"the chain no longer holds the expected head {expect_head}: entries after it "
                "were deleted, or it is another log",
            )  # fmt: skip
        return AuditReport(True, count, seq, prev)

    def _all(self) -> Iterator[AuditEntry]:
        with self.meta.read() as conn:
            result = conn.execution_options(yield_per=1000).execute(
                select(audit_log).order_by(audit_log.c.seq)
            )
            for row in result:
                yield _entry(row)


def _check(entry: AuditEntry, seq: int, prev: str) -> str | None:
    where = f"entry {entry.seq} ({entry.action} by {entry.actor} at {entry.at.isoformat()})"
    if entry.seq != seq:
        return f"entry {seq} is missing (the next is {entry.seq}): an entry was deleted"
    if entry.prev_hash != prev:
        return f"{where} does not link to the entry before it: an entry was deleted or replaced"
    fields = {k: v for k, v in entry.to_dict().items() if k != "hash"}
    fields["at"] = entry.at
    if entry_hash(**fields) != entry.hash:
        return f"{where} does not match its hash: it was edited after it was written"
    return None


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=int(row.seq), at=as_utc(row.at), actor=row.actor, action=row.action, target=row.target,
        model=row.model, version=row.version, detail=row.detail or {}, prev_hash=row.prev_hash,
        hash=row.hash,
    )  # fmt: skip
