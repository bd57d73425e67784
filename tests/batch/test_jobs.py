"""The job store: claims, and every action guarded by the principal's role."""

from __future__ import annotations

from pathlib import Path

import pytest

from credit_files import rows, write_parquet
from shipyard import Registry
from shipyard.batch.run import resume_job, start_job
from shipyard.errors import ConflictError


def test_a_succeeded_job_is_not_resumed(registry: Registry, tmp_path: Path) -> None:
    source = write_parquet(rows(100), tmp_path / "in.parquet", row_group=50)
    job = start_job(registry, "credit:1", str(source), str(tmp_path / "out")).job
    with pytest.raises(ConflictError, match="succeeded already"):
        resume_job(registry, job.id)
