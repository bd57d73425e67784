"""The job store: claims, and every action guarded by the principal's role."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from credit_files import rows, write_parquet
from shipyard import Registry
from shipyard.batch.jobs import Jobs, UnitDone
from shipyard.batch.run import resume_job, start_job
from shipyard.errors import ConflictError, PermissionDeniedError
from shipyard.security.access import ACTIONS, Action, Principal, Role
from shipyard.security.audit import AuditLog
from shipyard.security.context import Context


def test_a_succeeded_job_is_not_resumed(registry: Registry, tmp_path: Path) -> None:
    source = write_parquet(rows(100), tmp_path / "in.parquet", row_group=50)
    job = start_job(registry, "credit:1", str(source), str(tmp_path / "out")).job
    with pytest.raises(ConflictError, match="succeeded already"):
        resume_job(registry, job.id)


#: Each action of `Jobs` and what it needs.
JOB_ACTIONS = {
    "create": Action.PREDICT,
    "get": Action.READ,
    "list": Action.READ,
    "claim": Action.PREDICT,
    "unit_done": Action.PREDICT,
    "finish": Action.PREDICT,
}


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_every_action_of_jobs_needs_its_role_and_a_refusal_is_audited(
    registry: Registry, context: Context, role: Role
) -> None:
    job = Jobs(context).create(
        ref="credit:1", model="credit", version=1, sources=[], output="memory://out", options={}
    )
    job = Jobs(context).finish(job, "failed", "stopped")  # resumable, by a principal that may
    who = Principal(f"{role}-bot", role, via="api-key")
    jobs = Jobs(Context(registry.settings, registry.meta, who, who.name))
    calls: dict[str, Callable[[], object]] = {
        "create": lambda: jobs.create(
            ref="credit:1", model="credit", version=1, sources=[], output="memory://o", options={}
        ),
        "get": lambda: jobs.get(job.id),
        "list": jobs.list,
        "claim": lambda: jobs.claim(job.id),
        "unit_done": lambda: jobs.unit_done(job, UnitDone(0, 0, 10, 9, 1)),
        "finish": lambda: jobs.finish(job, "failed", "stopped again"),
    }
    assert (
        set(calls) == set(JOB_ACTIONS) == {name for name in vars(Jobs) if not name.startswith("_")}
    )  # every public action is walked
    audit = AuditLog(registry.meta)
    for name, action in JOB_ACTIONS.items():
        if role >= ACTIONS[action]:
            calls[name]()
            continue
        with pytest.raises(PermissionDeniedError, match=f"may not {action}"):
            calls[name]()
        [denied] = audit.list(limit=1)
        assert (denied.action, denied.actor, denied.detail["action"]) == ("denied", who.name, str(action))
    assert {e.detail["action"] for e in audit.list(action="denied")} == {
        str(a) for a in JOB_ACTIONS.values() if role < ACTIONS[a]
    }


def test_a_principal_scoped_to_other_models_may_not_run_a_job_of_this_one(
    registry: Registry, context: Context
) -> None:
    job = Jobs(context).create(
        ref="credit:1", model="credit", version=1, sources=[], output="memory://out", options={}
    )
    who = Principal("fraud-bot", Role.ADMIN, models=("fraud*",), via="api-key")
    jobs = Jobs(Context(registry.settings, registry.meta, who, who.name))
    assert jobs.get(job.id).id == job.id  # reading jobs concerns no model, as in 'shipyard batch status'
    with pytest.raises(PermissionDeniedError, match="model 'credit'"):
        jobs.finish(job, "failed", "not mine")
    assert Jobs(context).get(job.id).state == "running"
