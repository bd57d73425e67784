"""A lease in the metadata store: at most one holder of a name at a time, across every replica.

The holder renews before the lease runs out; if it dies, another takes over once it has expired.
Taking or renewing is one transaction that succeeds only when the row is free, expired, or
already ours, so two replicas can never both believe they hold it (the clocks of the replicas
must agree to well within the lease's length, as they do under NTP).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, delete, insert, or_, select, update

from shipyard.store.metadata import MetadataStore, as_utc, utcnow
from shipyard.store.schema import leases

__all__ = ["Lease"]


class Lease:
    """The lease `name`, held as `holder` for `seconds` at a time.

    Args:
        meta: the metadata store every replica shares.
        name: what is leased (e.g. 'rollout-controller').
        holder: who this process is (unique per process: host, pid and a random part).
        seconds: how long a taken or renewed lease lasts.
    """

    def __init__(self, meta: MetadataStore, name: str, holder: str, *, seconds: float = 15.0) -> None:
        self.meta = meta
        self.name = name
        self.holder = holder
        self.seconds = seconds

    def acquire(self) -> bool:
        """Take or renew the lease; True when this holder has it now."""

        def change(conn: Connection) -> bool:
            now = utcnow()
            until = now + timedelta(seconds=self.seconds)
            taken = conn.execute(
                update(leases)
                .where(leases.c.name == self.name)
                .where(or_(leases.c.holder == self.holder, leases.c.expires_at < now))
                .values(holder=self.holder, expires_at=until)
            )
            if taken.rowcount:
                return True
            if conn.execute(select(leases.c.name).where(leases.c.name == self.name)).first():
                return False  # held by another, not yet expired
            conn.execute(insert(leases).values(name=self.name, holder=self.holder, expires_at=until))
            return True

        # A replica that inserts the row first makes our insert fail; `write` then retries the
        # whole change, which finds the row held.
        return self.meta.write(change)

    def release(self) -> None:
        """Give the lease up (if held), so another replica can take it at once."""
        self.meta.write(
            lambda conn: conn.execute(
                delete(leases).where(leases.c.name == self.name).where(leases.c.holder == self.holder)
            )
        )

    def holder_now(self) -> str | None:
        """Who holds the lease now (None when nobody does or it expired)."""
        with self.meta.read() as conn:
            row = conn.execute(select(leases).where(leases.c.name == self.name)).first()
        if row is None:
            return None
        return str(row.holder) if as_utc(row.expires_at) >= utcnow() else None
