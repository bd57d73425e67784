"""The store of schedules on a real database: what it refuses, claims of due times, who runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import update

from shipyard import Registry
from shipyard.errors import BatchError, ConflictError, NotFoundError
from shipyard.scheduling.schedules import Schedules
from shipyard.security.access import Principal, Role
from shipyard.security.context import Context
from shipyard.store.metadata import utcnow

Backdate = Callable[[Schedules, str, int], None]


def test_bad_schedules_are_refused(schedules: Schedules) -> None:
    with pytest.raises(BatchError, match=r"cron expression \(field 1, the minute, is '99'; expected 0-59\)"):
        schedules.add("nightly", "99 2 * * *", ["batch", "list"])
    with pytest.raises(BatchError, match="Expected one of batch"):
        schedules.add("nightly", "0 2 * * *", ["serve", "fraud@production"])
    schedules.add("nightly", "0 2 * * *", ["batch", "list"])
    with pytest.raises(ConflictError, match="exists"):
        schedules.add("nightly", "0 3 * * *", ["batch", "list"])
    with pytest.raises(NotFoundError):
        schedules.remove("weekly")
    assert [s.name for s in schedules.list()] == ["nightly"]


def test_a_schedule_runs_one_at_a_time(schedules: Schedules, backdate: Backdate) -> None:
    schedules.add("hourly", "0 * * * *", ["batch", "list"])
    backdate(schedules, "hourly", days=1)
    now = utcnow()
    first = schedules.claim("hourly", now - timedelta(hours=1))
    assert first is not None and first.status == "running"  # held by this live process
    second = schedules.claim("hourly", now)
    assert second is not None and second.status == "skipped"
    assert "still running" in second.output
    assert schedules.claim("hourly", now) is None  # another scheduler cannot take it again


def test_a_run_left_by_a_dead_scheduler_no_longer_holds_the_schedule(
    schedules: Schedules, backdate: Backdate
) -> None:
    from shipyard.store.schema import schedule_runs

    schedules.add("hourly", "0 * * * *", ["batch", "list"])
    backdate(schedules, "hourly", days=1)
    now = utcnow()
    orphan = schedules.claim("hourly", now - timedelta(hours=1))
    assert orphan is not None
    schedules.context.meta.write(  # its scheduler was a process that no longer exists
        lambda conn: conn.execute(
            update(schedule_runs).where(schedule_runs.c.id == orphan.id).values(holder="nohost:999999")
        )
    )
    fresh = schedules.claim("hourly", now)
    assert fresh is not None and fresh.status == "running"
    [latest, old] = schedules.runs("hourly")
    assert latest.id == fresh.id
    assert (old.status, old.output) == ("failed", "the scheduler stopped during the run")


def test_a_schedule_runs_as_whoever_added_it(registry: Registry, schedules: Schedules) -> None:
    """(Every action with every role is walked in tests/security/test_store_roles.py.)"""
    who = Principal("deployer-bot", Role.DEPLOYER, via="api-key")
    theirs = Schedules(Context(registry.settings, registry.meta, who, who.name))
    theirs.add("mine", "0 3 * * *", ["batch", "list"])
    assert schedules.get("mine").run_as == who
