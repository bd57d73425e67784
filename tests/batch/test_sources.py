"""Inputs: read whole, refused when they are not what they say, checked unchanged on resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from credit_files import rows, write_parquet
from shipyard import Registry
from shipyard.batch.jobs import Jobs
from shipyard.batch.run import BatchOptions, resume_job, start_job
from shipyard.errors import BatchError, UnresumableJobError
from shipyard.security.context import Context


def test_a_csv_file_is_read_whole_every_time(registry: Registry, tmp_path: Path) -> None:
    # The header was once read by a second reader on the rows' own handle, whose read-ahead
    # could move it: some runs lost rows or took a line from the middle as the header.
    source = tmp_path / "in.csv"
    rows(40_000).to_csv(source, index=False)
    for attempt in range(4):
        job = start_job(registry, "credit:1", str(source), str(tmp_path / f"out{attempt}")).job
        assert (job.rows, job.scored, job.rejected) == (40_000, 40_000, 0)


def test_a_file_that_is_not_parquet_fails_the_job_naming_it(
    registry: Registry, context: Context, tmp_path: Path
) -> None:
    fake = tmp_path / "fake.parquet"
    fake.write_text("customer,age\nc1,30\n")
    with pytest.raises(BatchError, match=r"cannot read .*fake.parquet as parquet"):
        start_job(registry, "credit:1", str(fake), str(tmp_path / "out"))
    [job] = Jobs(context).list()
    assert job.state == "failed" and "fake.parquet" in (job.error or "")


def test_a_job_whose_input_changed_is_not_offered_a_resume(
    registry: Registry, context: Context, tmp_path: Path
) -> None:
    source = write_parquet(rows(400), tmp_path / "in.parquet", row_group=200)
    options = BatchOptions(passthrough=("nope",))
    with pytest.raises(UnresumableJobError, match="start a new job without it"):
        start_job(registry, "credit:1", str(source), str(tmp_path / "out"), options)
    [job] = Jobs(context).list()
    write_parquet(rows(401), source, row_group=200)
    with pytest.raises(UnresumableJobError, match="changed since the job started") as raised:
        resume_job(registry, job.id)
    assert "batch resume" not in str(raised.value)
