"""The job store: claims, and a principal's model scope (every action with every role is walked
in tests/security/test_store_roles.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from credit_files import rows, write_parquet
from shipyard import Registry
from shipyard.batch.jobs import Jobs
from shipyard.batch.run import resume_job, start_job
from shipyard.errors import ConflictError, PermissionDeniedError
from shipyard.security.access import Principal, Role
from shipyard.security.context import Context


def test_a_succeeded_job_is_not_resumed(registry: Registry, tmp_path: Path) -> None:
    source = write_parquet(rows(100), tmp_path / "in.parquet", row_group=50)
    job = start_job(registry, "credit:1", str(source), str(tmp_path / "out")).job
    with pytest.raises(ConflictError, match="succeeded already"):
        resume_job(registry, job.id)


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
