"""Running a job on an engine: units recorded, the job ended as succeeded or failed."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from credit_files import rows, write_parquet
from shipyard import Registry
from shipyard.batch.engine import ENGINES, engine_named, run_job
from shipyard.batch.jobs import Job, Jobs
from shipyard.batch.memory import MemoryEngine
from shipyard.batch.run import BatchOptions, start_job
from shipyard.errors import BatchError, ConflictError
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


def tables(units: int, n: int, *, bad: tuple[int, ...] = (), seed: int = 1) -> list[pa.Table]:
    """`units` tables of `n` credit applications; rows in `bad` (of the whole input) are not numbers."""
    frame = rows(units * n, bad=bad, seed=seed)
    if bad:
        frame = frame.astype({"income": str})
    whole = pa.Table.from_pandas(frame, preserve_index=False)
    return [whole.slice(i * n, n) for i in range(units)]


def memory_job(jobs: Jobs, engine: MemoryEngine, **options: Any) -> Job:
    return jobs.create(
        ref="credit:1", model="credit", version=1, sources=engine.sources(), output="memory://out",
        options=asdict(BatchOptions(**options)) | {"passthrough": list(options.get("passthrough", ()))},
    )  # fmt: skip


def test_a_failed_job_keeps_its_done_units_and_a_resume_scores_only_the_rest(
    registry: Registry, context: Context
) -> None:
    engine = MemoryEngine({"memory://day": tables(4, 100, bad=(150,))})
    engine.failing = {(0, 2)}
    jobs = Jobs(context)
    job = memory_job(jobs, engine, passthrough=("customer",))
    loaded = registry.load("credit:1")
    with pytest.raises(BatchError, match=rf"batch job {job.id} failed: cannot read unit 2 of memory://day"):
        run_job(jobs, job, loaded, engine=engine)
    failed = jobs.get(job.id)
    assert (failed.state, failed.units_done, failed.rows, failed.rejected) == ("failed", 2, 200, 1)
    assert "cannot read unit 2" in (failed.error or "")
    assert failed.done == {0: frozenset({0, 1})}
    summary = run_job(jobs, jobs.claim(job.id), loaded, engine=engine)
    assert engine.scored == [(0, 0), (0, 1), (0, 2), (0, 3)]  # units 0 and 1 were not scored again
    assert summary.rows_this_run == 200
    ended = summary.job
    assert (ended.state, ended.units_done, ended.rows, ended.scored, ended.rejected) == (
        "succeeded", 4, 400, 399, 1,
    )  # fmt: skip
    assert engine.rejects[0, 1]["row"].to_pylist() == [150]  # the input's row, not the unit's
    assert engine.outputs[0, 3]["row"].to_pylist() == list(range(300, 400))
    assert engine.outputs[0, 3]["customer"].to_pylist() == [f"c{i}" for i in range(300, 400)]


def test_a_job_past_its_reject_share_fails_with_every_unit_recorded(
    registry: Registry, context: Context
) -> None:
    engine = MemoryEngine({"memory://a": tables(2, 50, bad=(3, 60)), "memory://b": tables(1, 50, seed=2)})
    jobs = Jobs(context)
    job = memory_job(jobs, engine, max_reject_share=0.01)
    with pytest.raises(
        BatchError, match=r"2 of 150 rows \(1.33%\) were rejected, more than --max-reject-share"
    ):
        run_job(jobs, job, registry.load("credit:1"), engine=engine)
    failed = jobs.get(job.id)
    assert (failed.state, failed.units_done, failed.rows, failed.rejected) == ("failed", 3, 150, 2)
    assert "their reasons are under memory://out/rejects/" in (failed.error or "")
    with pytest.raises(ConflictError, match="succeeded already"):  # a resume may try again ...
        jobs.claim(jobs.finish(failed, "succeeded").id)  # ... unless it succeeded


def test_a_job_within_its_reject_share_succeeds_and_reports_progress(
    registry: Registry, context: Context
) -> None:
    engine = MemoryEngine({"memory://a": tables(3, 100, bad=(42,))})
    jobs = Jobs(context)
    job = memory_job(jobs, engine)
    seen: list[tuple[int, int, int]] = []
    summary = run_job(
        jobs, job, registry.load("credit:1"), engine=engine,
        on_progress=lambda p: seen.append((p.rows, p.scored, p.rejected)),
    )  # fmt: skip
    assert summary.job.state == "succeeded"
    assert seen == [(100, 99, 1), (200, 199, 1), (300, 299, 1)]


def test_engines_are_found_by_name_and_an_unknown_one_is_named() -> None:
    assert set(ENGINES) == {"local", "spark"}
    assert engine_named("local").formats == ("parquet", "csv", "jsonl")
    assert engine_named("spark").formats == ("parquet",)
    with pytest.raises(BatchError, match=r"--engine is 'beam'; expected local or spark"):
        engine_named("beam")
    with pytest.raises(BatchError, match=r"--engine is 'beam'; expected local or spark"):
        BatchOptions(engine="beam")
    with pytest.raises(BatchError, match=r"--engine spark writes Parquet; --format csv needs --engine local"):
        BatchOptions(engine="spark", format="csv")
