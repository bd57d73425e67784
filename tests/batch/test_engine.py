"""Running a job on an engine: units recorded, the job ended as succeeded or failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from credit_files import rows, write_parquet
from shipyard import Registry
from shipyard.batch.jobs import Jobs
from shipyard.batch.run import start_job
from shipyard.errors import BatchError
from shipyard.security.context import Context


def test_too_many_rejects_fail_the_job_with_the_reason(
    registry: Registry, context: Context, tmp_path: Path
) -> None:
    source = write_parquet(rows(1000, bad=tuple(range(0, 1000, 50))), tmp_path / "in.parquet", row_group=500)
    with pytest.raises(
        BatchError, match=r"20 of 1000 rows \(2.00%\) were rejected, more than --max-reject-share 1.00%"
    ):
        start_job(registry, "credit:1", str(source), str(tmp_path / "out"))
    [job] = Jobs(context).list()
    assert job.state == "failed"
    assert job.rows == 1000  # every row accounted for: the parts are there to inspect
