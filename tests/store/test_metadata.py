from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from databases import database_at, migrations
from shipyard import Registry, Settings, StoreUnavailableError
from shipyard.store.metadata import MetadataStore
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
