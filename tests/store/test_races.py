"""Lost races: which database errors mean a concurrent writer won, and the wait before a new try.

How often `MetadataStore.write` tries a change again is in test_metadata.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import psycopg.errors as pg
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from shipyard.store.races import backoff, lost_race


def _sqlite_error(statement: str) -> sa_exc.DBAPIError:
    """The error SQLite raises for `statement` on a table `t` with a unique key holding 1."""
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1, 'a')")
        with pytest.raises(sa_exc.DBAPIError) as caught:
            conn.exec_driver_sql(statement)
    engine.dispose()
    return caught.value


def test_a_sqlite_key_another_writer_took_is_a_lost_race() -> None:
    for statement in ("INSERT INTO t VALUES (2, 'a')", "INSERT INTO t VALUES (1, 'b')"):
        assert lost_race(_sqlite_error(statement)) == "a unique key another writer took first"


def test_a_sqlite_error_of_the_change_itself_is_no_race() -> None:
    assert lost_race(_sqlite_error("INSERT INTO t VALUES (2, NULL)")) is None


def test_a_locked_sqlite_database_is_a_lost_race() -> None:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorname = "SQLITE_BUSY"
    assert lost_race(sa_exc.OperationalError("UPDATE t", {}, error)) == "a database locked by another writer"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (pg.UniqueViolation, "a unique key another writer took first"),
        (pg.ForeignKeyViolation, "a row another writer added or removed at the same time"),
        (pg.SerializationFailure, "a serialization failure"),
        (pg.DeadlockDetected, "a deadlock with another writer"),
        (pg.NotNullViolation, None),
    ],
)
def test_postgresql_races_are_known_by_their_sqlstate(
    error: Callable[[], Exception], expected: str | None
) -> None:
    assert lost_race(sa_exc.DBAPIError("INSERT", {}, error())) == expected


def test_an_error_without_a_database_code_is_no_race() -> None:
    assert lost_race(sa_exc.DBAPIError("INSERT", {}, RuntimeError("boom"))) is None


def test_the_wait_doubles_from_a_fiftieth_of_a_second_up_to_a_second_with_jitter() -> None:
    for attempt, ceiling in [(1, 0.02), (2, 0.04), (3, 0.08), (7, 1.0), (30, 1.0)]:
        waits = [backoff(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits), attempt
        assert len(set(waits)) > 1  # jittered, so writers that collided spread apart
