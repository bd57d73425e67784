"""Lost races: the database errors that mean a concurrent writer got there first, and how long to
wait before trying the whole change again.

`MetadataStore.write` retries a change that lost a race: a unique (or foreign) key taken by a
writer that committed first, a serialization failure or a deadlock on PostgreSQL, and a locked
database on SQLite. Any other error is the change's own and is not retried.
"""

from __future__ import annotations

import random

from sqlalchemy import exc as sa_exc

__all__ = ["ATTEMPTS", "backoff", "lost_race"]

# How many times a change runs before the store gives up on it.
ATTEMPTS = 10
_FIRST_WAIT = 0.02  # seconds before the second attempt, doubled for each one after
_LONGEST_WAIT = 1.0

# PostgreSQL's SQLSTATEs for a lost race (Appendix A of its manual).
_PG_RACES = {
    "23505": "a unique key another writer took first",
    "23503": "a row another writer added or removed at the same time",
    "40001": "a serialization failure",
    "40P01": "a deadlock with another writer",
}
# SQLite's extended result codes (sqlite3 errors carry their name since Python 3.11).
_SQLITE_RACES = {
    "SQLITE_CONSTRAINT_UNIQUE": "a unique key another writer took first",
    "SQLITE_CONSTRAINT_PRIMARYKEY": "a unique key another writer took first",
    "SQLITE_CONSTRAINT_FOREIGNKEY": "a row another writer added or removed at the same time",
    "SQLITE_BUSY": "a database locked by another writer",
    "SQLITE_BUSY_SNAPSHOT": "a database locked by another writer",
    "SQLITE_BUSY_RECOVERY": "a database locked by another writer",
    "SQLITE_LOCKED": "a database locked by another writer",
}


def lost_race(error: sa_exc.DBAPIError) -> str | None:
    """What the race was lost to, when `error` means a concurrent writer won one; else None."""
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str):
        return _PG_RACES.get(sqlstate)
    name = getattr(original, "sqlite_errorname", None)
    if isinstance(name, str):
        return _SQLITE_RACES.get(name)
    return None


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (from 1): doubling, capped, jittered.

    The jitter spreads writers that lost the same race apart, so they do not collide again.
    """
    ceiling = min(_LONGEST_WAIT, _FIRST_WAIT * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0.0, ceiling / 2)
