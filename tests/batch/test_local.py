"""The local engine on real files and a real metadata store: streaming, order, formats, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from tests.commands import shipyard_cli, start_shipyard

from credit_files import read_parts, rows, write_parquet
from shipyard import Registry
from shipyard.batch.jobs import Jobs
from shipyard.batch.local import cores
from shipyard.batch.run import BatchOptions, start_job
from shipyard.errors import BatchError
from shipyard.security.context import Context


def test_a_parquet_file_is_scored_in_order_with_rejects_kept_aside(
    registry: Registry, tmp_path: Path
) -> None:
    frame = rows(5000, bad=(7, 4321))
    source = write_parquet(frame, tmp_path / "in.parquet", row_group=1000)
    summary = start_job(
        registry, "credit:1", str(source), str(tmp_path / "out"), BatchOptions(passthrough=("customer",))
    )
    job = summary.job
    assert (job.state, job.rows, job.scored, job.rejected, job.units_done) == ("succeeded", 5000, 4998, 2, 5)
    out = read_parts(tmp_path / "out")
    assert out["row"].tolist() == [i for i in range(5000) if i not in (7, 4321)]
    assert out["customer"].tolist() == [f"c{i}" for i in range(5000) if i not in (7, 4321)]
    assert set(out["model_version"].astype(str)) == {"credit:1"}
    good = frame.drop(index=[7, 4321]).drop(columns="customer").astype({"income": float})
    direct = registry.load("credit:1").predict(good.head(50))
    np.testing.assert_allclose(out["proba_1"].head(50), direct.probabilities[:, 1])
    rejects = read_parts(tmp_path / "out" / "rejects")
    assert rejects["row"].tolist() == [7, 4321]
    assert all("'unknown': expected a number" in r for r in rejects["reason"])
    assert "of row 4321 " in rejects["reason"][1]  # the file's row, not the batch's
    assert rejects["customer"].tolist() == ["c7", "c4321"]
    assert not list((tmp_path / "out").rglob(".*.tmp"))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_csv_and_json_lines_stream_in_units_and_a_bad_cell_rejects_only_its_row(
    registry: Registry, tmp_path: Path, fmt: str
) -> None:
    frame = rows(2500, bad=(1200,))
    source = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        frame.to_csv(source, index=False)
    else:
        frame.to_json(source, orient="records", lines=True)
    options = BatchOptions(format=fmt, unit_rows=1000, batch_rows=300)
    job = start_job(registry, "credit:1", str(source), str(tmp_path / "out"), options).job
    assert (job.rows, job.scored, job.rejected, job.units_done) == (2500, 2499, 1, 3)
    parts = sorted((tmp_path / "out").glob(f"part-*.{fmt}"))
    assert [p.name for p in parts] == [f"part-00000-00000{i}.{fmt}" for i in range(3)]
    if fmt == "csv":
        out = pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)
    else:
        out = pd.concat([pd.read_json(p, lines=True) for p in parts], ignore_index=True)
    assert out["row"].tolist() == [i for i in range(2500) if i != 1200]


def test_globs_of_several_files_name_the_input_of_each_row(registry: Registry, tmp_path: Path) -> None:
    for day in (1, 2):
        write_parquet(rows(300, seed=day), tmp_path / f"2026-11-0{day}.parquet", row_group=100)
    job = start_job(registry, "credit:1", str(tmp_path / "2026-11-*.parquet"), str(tmp_path / "out")).job
    assert (job.rows, job.units_done) == (600, 6)
    out = read_parts(tmp_path / "out")
    assert out["input_file"].astype(str).str.endswith("2026-11-01.parquet").sum() == 300
    assert out["row"].tolist() == list(range(300)) * 2


def test_batches_scored_side_by_side_come_back_in_input_order(registry: Registry, tmp_path: Path) -> None:
    """Many small batches on four scoring threads give exactly the output of one thread."""
    source = write_parquet(rows(3000, bad=(5, 2999)), tmp_path / "in.parquet", row_group=700)
    outputs = []
    for workers in (1, 4):
        options = BatchOptions(passthrough=("customer",), batch_rows=37, workers=workers)
        job = start_job(registry, "credit:1", str(source), str(tmp_path / f"out{workers}"), options).job
        assert (job.rows, job.scored, job.rejected) == (3000, 2998, 2)
        outputs.append(read_parts(tmp_path / f"out{workers}"))
    pd.testing.assert_frame_equal(outputs[0], outputs[1])
    assert outputs[1]["row"].tolist() == [i for i in range(3000) if i not in (5, 2999)]
    assert read_parts(tmp_path / "out4" / "rejects")["row"].tolist() == [5, 2999]
    with pytest.raises(BatchError, match="--workers is -1; expected 0 \\(one per core\\) or more"):
        BatchOptions(workers=-1)


@pytest.mark.skipif("jemalloc" not in pa.supported_memory_backends(), reason="Arrow built without jemalloc")
def test_a_job_takes_arrow_buffers_from_jemalloc_and_gives_the_pool_back(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_parquet(rows(300), tmp_path / "in.parquet", row_group=100)
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    before = pa.default_memory_pool().backend_name
    seen: list[str] = []

    def on_progress(_: Any) -> None:
        seen.append(pa.default_memory_pool().backend_name)

    start_job(registry, "credit:1", str(source), str(tmp_path / "out"), on_progress=on_progress)
    assert set(seen) == {"jemalloc"}
    assert pa.default_memory_pool().backend_name == before
    # A pool the user chose is left alone.
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", before)
    seen.clear()
    start_job(registry, "credit:1", str(source), str(tmp_path / "out2"), on_progress=on_progress)
    assert set(seen) == {before}


@pytest.mark.slow
def test_a_job_killed_mid_way_resumes_and_writes_every_row_exactly_once(
    registry: Registry, context: Context, tmp_path: Path
) -> None:
    source = write_parquet(rows(60_000, bad=(5, 33_333)), tmp_path / "in.parquet", row_group=2000)
    command = ["batch", "run", "credit:1", "--input", str(source), "--output", str(tmp_path / "killed"),
               "--batch-rows", "500", "--passthrough", "customer"]  # fmt: skip
    process = start_shipyard(
        registry.settings.home, *command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    jobs = Jobs(context)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = jobs.list()
        if found and found[0].units_done >= 4:
            break
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed = jobs.get(found[0].id)
    assert killed.state == "running" and 4 <= killed.units_done < 30  # killed mid-way, nothing ended it
    status = shipyard_cli(registry.settings.home, "batch", "status", killed.id, timeout=120)
    assert status.returncode == 0, status.stderr
    assert "stopped: its process" in " ".join(status.stdout.split())  # not shown as running
    done = shipyard_cli(registry.settings.home, "batch", "resume", killed.id, "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = json.loads(done.stdout)
    assert (resumed["state"], resumed["rows"], resumed["scored"], resumed["rejected"]) == (
        "succeeded",
        60_000,
        59_998,
        2,
    )
    whole = start_job(
        registry, "credit:1", str(source), str(tmp_path / "whole"), BatchOptions(passthrough=("customer",))
    )
    assert whole.job.state == "succeeded"
    after_kill, uninterrupted = read_parts(tmp_path / "killed"), read_parts(tmp_path / "whole")
    pd.testing.assert_frame_equal(after_kill, uninterrupted)
    assert after_kill["row"].is_unique and len(after_kill) == 59_998
    pd.testing.assert_frame_equal(
        read_parts(tmp_path / "killed" / "rejects"), read_parts(tmp_path / "whole" / "rejects")
    )
    assert not list((tmp_path / "killed").rglob(".*.tmp"))


def test_the_cores_are_the_affinity_or_else_every_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    if hasattr(os, "sched_getaffinity"):
        assert cores() == len(os.sched_getaffinity(0))
        monkeypatch.delattr(os, "sched_getaffinity")  # as on macOS and Windows
    assert cores() == (os.cpu_count() or 1)
