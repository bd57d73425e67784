from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from databases import database_at, migrations
from shipyard import Registry, Settings, StoreError, StoreUnavailableError
from shipyard.store.metadata import MetadataStore
from shipyard.store.races import ATTEMPTS
from shipyard.store.schema import HEAD_REVISION


def test_head_revision_constant_matches_the_migrations() -> None:
    assert ScriptDirectory.from_config(migrations()).get_current_head() == HEAD_REVISION


def test_store_migrates_a_fresh_database_and_reopens_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    MetadataStore(url).close()
    store = MetadataStore(url)
    with store.read() as conn:
        assert conn.exec_driver_sql("select version_num from alembic_version").scalar() == HEAD_REVISION
    store.close()


def test_a_database_at_the_first_revision_is_upgraded_with_its_rows_kept(tmp_path: Path) -> None:
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with database_at(url, "0001") as conn:
        conn.execute(
            text(
                "insert into models (name, description, next_version, created_at, updated_at) "
                "values ('kept', '', 1, '2026-01-01', '2026-01-01')"
            )
        )
    with Registry(Settings(home=tmp_path, db_url=url, store_url=str(tmp_path / "a"))) as reg:
        assert [m.name for m in reg.list_models()] == ["kept"]
        with reg.meta.read() as conn:
            assert conn.exec_driver_sql("select count(*) from gate_results").scalar() == 0


def test_unreachable_database_gets_a_clear_message() -> None:
    with pytest.raises(StoreUnavailableError, match="unreachable.*SHIPYARD_DB_URL"):
        MetadataStore("postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_locked_database_is_reported_and_nothing_is_written(
    tmp_path: Path, cancer_model: object, cancer: object
) -> None:
    settings = Settings.for_home(tmp_path)
    settings = Settings(
        home=settings.home, db_url=settings.db_url, store_url=settings.store_url, db_timeout=0.2
    )
    with Registry(settings) as registry:
        holder = sqlite3.connect(tmp_path / "shipyard.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreUnavailableError, match="locked"):
                registry.register(cancer_model, name="cancer", train_data=cancer, target="label")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert registry.list_models() == []


def _attempts_of(store: MetadataStore, statement: str) -> tuple[int, StoreError]:
    """Run a change that executes `statement` until the store gives up; how often it ran, and why."""
    from sqlalchemy import text

    runs = 0

    def change(conn: Connection) -> None:
        nonlocal runs
        runs += 1
        conn.execute(text(statement))

    with pytest.raises(StoreError) as caught:
        store.write(change)
    return runs, caught.value


def test_a_key_that_stays_taken_is_tried_a_bounded_number_of_times_then_named(settings: Settings) -> None:
    store = MetadataStore(settings.db_url)
    now = "'2026-01-01 00:00:00+00'"
    row = f"('taken', '', 1, {now}, {now})"
    store.write(
        lambda conn: conn.exec_driver_sql(
            f"INSERT INTO models (name, description, next_version, created_at, updated_at) VALUES {row}"
        )
    )
    runs, error = _attempts_of(
        store, f"INSERT INTO models (name, description, next_version, created_at, updated_at) VALUES {row}"
    )
    store.close()
    assert runs == ATTEMPTS
    assert f"refused the change {ATTEMPTS} times in" in str(error)
    assert "nothing was written" in str(error)


def test_an_error_that_is_no_race_is_not_tried_again(settings: Settings) -> None:
    store = MetadataStore(settings.db_url)
    runs, error = _attempts_of(store, "INSERT INTO models (name) VALUES (NULL)")
    store.close()
    assert runs == 1
    assert "refused the change (" in str(error)


def test_writers_queue_and_one_that_waited_past_its_timeout_is_told_the_store_is_locked(
    settings: Settings,
) -> None:
    first, second = MetadataStore(settings.db_url), MetadataStore(settings.db_url, busy_timeout=0.5)
    holding, release = threading.Event(), threading.Event()

    def hold(conn: Connection) -> None:
        holding.set()
        release.wait(30)

    holder = threading.Thread(target=first.write, args=(hold,))
    holder.start()
    try:
        assert holding.wait(30)
        with pytest.raises(StoreUnavailableError, match="locked") as caught:
            second.write(lambda conn: conn.exec_driver_sql("DELETE FROM leases"))
        assert "nothing was written" in str(caught.value)
    finally:
        release.set()
        holder.join(30)
    second.write(lambda conn: conn.exec_driver_sql("DELETE FROM leases"))  # the queue moved on
    first.close()
    second.close()
