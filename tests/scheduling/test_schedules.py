"""The store of schedules on a real database: what it refuses, claims of due times, roles."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import update

from shipyard import Registry
from shipyard.errors import BatchError, ConflictError, NotFoundError, PermissionDeniedError
from shipyard.scheduling.scheduler import Scheduler
from shipyard.scheduling.schedules import Schedules
from shipyard.security.access import ACTIONS, Action, Principal, Role
from shipyard.security.audit import AuditLog
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


#: Each action of `Schedules` (and starting a scheduler) and what it needs, in the order checked.
SCHEDULE_ACTIONS: dict[str, tuple[Action, ...]] = {
    "add": (Action.SCHEDULE,),
    "add a command that runs code": (Action.SCHEDULE, Action.RUN_COMMANDS),
    "get": (Action.READ,),
    "list": (Action.READ,),
    "runs": (Action.READ,),
    "claim": (Action.SCHEDULE,),
    "finish": (Action.SCHEDULE,),
    "start a scheduler": (Action.SCHEDULE,),
    "remove": (Action.SCHEDULE,),
}


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_every_action_of_schedules_needs_its_role_and_a_refusal_is_audited(
    registry: Registry, schedules: Schedules, backdate: Backdate, role: Role
) -> None:
    schedules.add("nightly", "0 2 * * *", ["batch", "list"])
    backdate(schedules, "nightly", days=2)
    now = utcnow()
    run = schedules.claim("nightly", now - timedelta(days=1))
    assert run is not None
    who = Principal(f"{role}-bot", role, via="api-key")
    theirs = Schedules(Context(registry.settings, registry.meta, who, who.name))
    calls: dict[str, Callable[[], object]] = {
        "add": lambda: theirs.add("mine", "0 3 * * *", ["batch", "list"]),
        "add a command that runs code": lambda: theirs.add(
            "retrain", "0 4 * * *", ["monitor", "watch", "credit", "--on-drift", "true"]
        ),
        "get": lambda: theirs.get("nightly"),
        "list": theirs.list,
        "runs": lambda: theirs.runs("nightly"),
        "claim": lambda: theirs.claim("nightly", now),
        "finish": lambda: theirs.finish(run.id, exit_code=0, output=""),
        "start a scheduler": lambda: Scheduler(theirs),
        "remove": lambda: theirs.remove("nightly"),
    }
    public = {name for name in vars(Schedules) if not name.startswith("_")}
    assert public <= set(calls) == set(SCHEDULE_ACTIONS)  # every public action is walked
    audit = AuditLog(registry.meta)
    for name, needs in SCHEDULE_ACTIONS.items():
        lacking = [action for action in needs if role < ACTIONS[action]]
        if not lacking:
            calls[name]()
            continue
        with pytest.raises(PermissionDeniedError, match=f"may not {lacking[0]}"):
            calls[name]()
        [denied] = audit.list(limit=1)
        assert (denied.action, denied.actor, denied.detail["action"]) == ("denied", who.name, str(lacking[0]))
    if role >= Role.DEPLOYER:  # what it added runs as it
        assert schedules.get("mine").run_as == who
