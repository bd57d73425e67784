"""The hash-chained audit log on real SQLite and PostgreSQL: every change is entered, any edit shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from databases import database_at
from shipyard import Registry, Settings
from shipyard.security.audit import GENESIS, AuditLog
from shipyard.security.keys import Keys


@pytest.fixture
def changed(registry: Registry, credit: pd.DataFrame, credit_pipeline: Any) -> Registry:
    registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    registry.set_alias("credit:2", "staging")
    Keys(registry).create("ci-bot", role="deployer")
    return registry


def test_every_change_is_entered_and_the_chain_verifies(changed: Registry) -> None:
    log = AuditLog(changed)
    entries = log.list()
    assert [e.action for e in entries][:2] == ["key-create", "alias"]
    assert entries[0].target == "key:ci-bot" and entries[0].model is None
    assert entries[1].target == "credit:2"
    assert [e.seq for e in reversed(entries)] == list(range(1, len(entries) + 1))
    assert entries[-1].prev_hash == GENESIS
    report = log.verify()
    assert report.ok and report.entries == len(entries)
    assert (report.head_seq, report.head_hash) == (entries[0].seq, entries[0].hash)


def test_an_edited_entry_is_named_by_verify(changed: Registry) -> None:
    with changed.meta.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2"))
    report = AuditLog(changed).verify()
    assert not report.ok
    assert report.problem is not None and "entry 2 " in report.problem and "edited" in report.problem


def test_a_deleted_entry_breaks_the_chain(changed: Registry) -> None:
    with changed.meta.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    report = AuditLog(changed).verify()
    assert not report.ok and report.problem is not None and "entry 2 is missing" in report.problem


def test_entries_deleted_from_the_end_are_caught_with_the_head_kept_earlier(changed: Registry) -> None:
    log = AuditLog(changed)
    head = log.verify().head_hash
    with changed.meta.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)"))
    assert log.verify().ok  # a shorter chain is still whole...
    report = log.verify(expect_head=head)  # ...but it no longer holds the head kept before
    assert not report.ok and report.problem is not None and head in report.problem


def test_an_inserted_entry_is_named_by_verify(changed: Registry) -> None:
    log = AuditLog(changed)
    head = log.verify()
    forged = {
        "seq": head.head_seq + 1, "prev": head.head_hash, "hash": "f" * 64, "detail": "{}",
    }  # fmt: skip
    with changed.meta.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (seq, at, actor, action, target, model, version, detail, "
                "prev_hash, hash) VALUES (:seq, CURRENT_TIMESTAMP, 'admin', 'alias', 'credit:1', "
                "'credit', 1, :detail, :prev, :hash)"
            ),
            forged,
        )
    report = log.verify()
    assert not report.ok
    assert report.problem is not None and f"entry {forged['seq']} " in report.problem


def test_a_change_log_from_before_is_chained_by_the_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with database_at(url, "0006") as conn:
        for i, action in enumerate(("register", "set-alias")):
            conn.execute(
                text(
                    "insert into changes (at, actor, action, model, version, detail) values "
                    f"('2026-01-0{i + 1} 10:00:00.000000', 'ana', '{action}', 'credit', 1, '{{\"x\": {i}}}')"
                )
            )
    with Registry(Settings(home=tmp_path, db_url=url, store_url=str(tmp_path / "a"))) as reg:
        log = AuditLog(reg)
        assert [(e.seq, e.action, e.target, dict(e.detail)) for e in reversed(log.list())] == [
            (1, "register", "credit:1", {"x": 0}),
            (2, "set-alias", "credit:1", {"x": 1}),
        ]
        assert log.verify().ok
        assert [c.action for c in reg.history("credit")] == ["set-alias", "register"]


def test_schedules_added_and_removed_are_audited(registry: Registry) -> None:
    from shipyard.scheduling.schedules import Schedules
    from shipyard.security.context import Context

    schedules = Schedules(Context(registry.settings, registry.meta, registry.principal, "ana"))
    schedules.add(
        "nightly", "0 2 * * *", ["batch", "run", "credit@production", "--input", "x", "--output", "y"]
    )
    schedules.remove("nightly")
    log = AuditLog(registry)
    assert [(e.action, e.actor, e.target) for e in log.list(limit=2)] == [
        ("schedule-remove", "ana", "schedule:nightly"),
        ("schedule-add", "ana", "schedule:nightly"),
    ]
    assert log.verify().ok
