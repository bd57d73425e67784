"""The metadata store: SQLAlchemy over SQLite (default) or PostgreSQL, migrated by Alembic.

Every change runs in one transaction (`MetadataStore.write`), and write transactions queue: on
SQLite one starts with `BEGIN IMMEDIATE`, on PostgreSQL with a transaction-level advisory lock
(one per schema). Each change thus reads the newest committed state (the audit chain's head,
version counters, a rollout's step) with no other writer between its read and its commit. A
change that loses a race all the same (a writer outside this queue, a deadlock, a locked SQLite
file) runs again whole, a bounded number of times with jittered backoff (`shipyard.store.races`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from shipyard.errors import StoreError, StoreUnavailableError
from shipyard.store.permissions import DEFAULT_FILE_MODE, create_file
from shipyard.store.races import ATTEMPTS, backoff, lost_race
from shipyard.store.schema import HEAD_REVISION

__all__ = ["MetadataStore", "utcnow"]

T = TypeVar("T")
_WRITE = "shipyard_write"
_MIGRATION_LOCK = 0x5348_4950  # "SHIP": the advisory lock key for migrations on PostgreSQL
# Writers queue on an advisory lock named for the schema, so stores in other schemas of the same
# database do not wait for each other.
_WRITE_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('shipyard-writes:' || current_schema(), 0))"


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A timestamp read back from the store, as timezone-aware UTC (SQLite drops the zone)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class MetadataStore:
    """A connection pool to the metadata database, migrated to the newest schema on open.

    Args:
        url: a SQLAlchemy URL (`sqlite:///path`, `postgresql+psycopg://...`).
        busy_timeout: seconds a writer waits for a lock held by another process.
        file_mode: the mode a new SQLite file and its folders are created with (its journal
            files follow it); None to leave it to the umask.

    Raises:
        StoreUnavailableError: the database cannot be reached or migrated.
    """

    def __init__(
        self, url: str, *, busy_timeout: float = 30.0, file_mode: int | None = DEFAULT_FILE_MODE
    ) -> None:
        self.url = url
        self.busy_timeout = busy_timeout
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self.shown_url = parsed.render_as_string(hide_password=True)
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                create_file(Path(parsed.database), file_mode=file_mode)
            self.engine = create_engine(url, connect_args={"timeout": busy_timeout})
            _use_explicit_sqlite_transactions(self.engine, busy_timeout)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        self._write_engine: Engine = self.engine.execution_options(**{_WRITE: True})
        self._migrate()

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection in a read transaction.

        Raises:
            StoreUnavailableError: the database cannot be reached.
        """
        with self._translated(), self.engine.begin() as conn:
            yield conn

    def write(self, change: Callable[[Connection], T]) -> T:
        """Run `change` in one write transaction, again whole when a concurrent writer won a race.

        The change must be a function of the connection only, so that running it again is safe.
        It runs at most `races.ATTEMPTS` times, and not again once `busy_timeout` has passed.

        Raises:
            StoreUnavailableError: the database stayed locked or busy, or is unreachable.
            StoreError: the database refused the change.
        """
        started = time.monotonic()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self._write_engine.begin() as conn:
                    if self.dialect == "postgresql":
                        self._queue(conn)
                    return change(conn)
            except sa_exc.DBAPIError as exc:
                race = lost_race(exc)
                waited = time.monotonic() - started
                if race is None or attempt == ATTEMPTS or waited >= self.busy_timeout:
                    raise self._given_up(exc, race, attempt, waited) from None
            time.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    def _queue(self, conn: Connection) -> None:
        """Wait (at most `busy_timeout`) until no other write transaction runs on this schema."""
        conn.execute(
            text("SELECT set_config('lock_timeout', :ms, true)"), {"ms": f"{int(self.busy_timeout * 1000)}"}
        )
        conn.execute(text(_WRITE_LOCK))

    def _given_up(self, exc: sa_exc.DBAPIError, race: str | None, attempts: int, waited: float) -> StoreError:
        """The error to raise for `exc`, after `attempts` attempts over `waited` seconds."""
        if race is None:
            return self._error(exc)
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        tried = f"{attempts} time{'s' if attempts > 1 else ''} in {waited:.1f} s"
        if isinstance(exc, sa_exc.IntegrityError):
            return StoreError(
                f"the metadata store {self.shown_url} refused the change {tried} ({detail}): other "
                "writers kept taking the same key first, or the change conflicts with a row already "
                "there; nothing was written"
            )
        return StoreUnavailableError(
            f"the metadata store {self.shown_url} stayed busy: the change lost to {race} {tried} "
            f"({detail}); nothing was written: try again when it is free"
        )

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sa_exc.DBAPIError as exc:
            raise self._error(exc) from None

    def _error(self, exc: sa_exc.DBAPIError) -> StoreError:
        """The error to raise for a database error that is not a lost race."""
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            return StoreUnavailableError(self._explain(exc))
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return StoreError(
            f"the metadata store {self.shown_url} refused the change ({detail}); nothing was written"
        )

    def _explain(self, exc: sa_exc.DBAPIError) -> str:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if "locked" in detail or "busy" in detail or "lock timeout" in detail:
            return (
                f"the metadata store {self.shown_url} is locked by another process ({detail}); "
                "nothing was written: try again when it is free"
            )
        return (
            f"the metadata store {self.shown_url} is unreachable ({detail}); nothing was "
            "written: check that the database is running and SHIPYARD_DB_URL is right"
        )

    def _migrate(self) -> None:
        with self._translated():
            if self._revision() == HEAD_REVISION:
                return
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", "shipyard.store:migrations")
            with self._write_engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
                config.attributes["connection"] = conn
                command.upgrade(config, "head")

    def _revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not self.engine.dialect.has_table(conn, "alembic_version"):
                return None
            from sqlalchemy import column, table

            row: Any = conn.execute(
                select(column("version_num")).select_from(table("alembic_version"))
            ).first()
            return None if row is None else str(row[0])


def _use_explicit_sqlite_transactions(engine: Engine, busy_timeout: float) -> None:
    """Let SQLAlchemy, not the sqlite3 module, decide when transactions start and how."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal" and not re.search(r":memory:|mode=memory", str(engine.url)):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
