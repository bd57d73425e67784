"""Batch prediction on real files and a real metadata store: streaming, rejects, formats, resume."""

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
import pyarrow.parquet as pq
import pytest
from tests.commands import shipyard_cli, start_shipyard

from shipyard import Registry
from shipyard.batch.jobs import Jobs
from shipyard.batch.run import BatchOptions, resume_job, start_job
from shipyard.errors import BatchError, ConflictError, InputError, UnresumableJobError


@pytest.fixture
def registry(sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any) -> Registry:
    sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    return sqlite_registry


def rows(n: int, *, seed: int = 1, bad: tuple[int, ...] = ()) -> pd.DataFrame:
    """Credit applications; rows in `bad` carry an income that is not a number."""
    from shipyard.datasets import make_credit

    frame = make_credit(n, seed=seed).drop(columns="default")
    frame["customer"] = [f"c{i}" for i in range(n)]
    if bad:
        frame["income"] = frame["income"].astype(object)
        frame.loc[list(bad), "income"] = "unknown"
    return frame


def write_parquet(frame: pd.DataFrame, path: Path, *, row_group: int) -> Path:
    table = pa.Table.from_pandas(frame.astype({"income": str}) if frame["income"].dtype == object else frame,
                                 preserve_index=False)  # fmt: skip
    pq.write_table(table, path, row_group_size=row_group)
    return path


def read_parts(folder: Path, pattern: str = "part-*.parquet") -> pd.DataFrame:
    parts = sorted(folder.glob(pattern))
    return pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)


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


def test_too_many_rejects_fail_the_job_with_the_reason(registry: Registry, tmp_path: Path) -> None:
    source = write_parquet(rows(1000, bad=tuple(range(0, 1000, 50))), tmp_path / "in.parquet", row_group=500)
    with pytest.raises(
        BatchError, match=r"20 of 1000 rows \(2.00%\) were rejected, more than --max-reject-share 1.00%"
    ):
        start_job(registry, "credit:1", str(source), str(tmp_path / "out"))
    [job] = Jobs(registry.meta, actor="t").list()
    assert job.state == "failed"
    assert job.rows == 1000  # every row accounted for: the parts are there to inspect


def test_bad_inputs_and_options_are_refused_before_any_job(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="matches no file"):
        start_job(registry, "credit:1", str(tmp_path / "none-*.parquet"), str(tmp_path / "out"))
    (tmp_path / "rows.xlsx").write_bytes(b"x")
    with pytest.raises(InputError, match="suffix '.xlsx'"):
        start_job(registry, "credit:1", str(tmp_path / "rows.xlsx"), str(tmp_path / "out"))
    with pytest.raises(BatchError, match="--format is 'xml'"):
        BatchOptions(format="xml")
    assert Jobs(registry.meta, actor="t").list() == []


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


def test_parquet_output_keeps_dictionaries_for_repeating_columns_only(
    registry: Registry, tmp_path: Path
) -> None:
    source = write_parquet(rows(500), tmp_path / "in.parquet", row_group=500)
    start_job(
        registry, "credit:1", str(source), str(tmp_path / "out"), BatchOptions(passthrough=("customer",))
    )
    [part] = sorted((tmp_path / "out").glob("part-*.parquet"))
    meta = pq.ParquetFile(part).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert "DELTA_BINARY_PACKED" in encodings["row"]
    assert "RLE_DICTIONARY" in encodings["model_version"]
    assert "RLE_DICTIONARY" in encodings["prediction"]
    assert "RLE_DICTIONARY" not in encodings["proba_1"]


def test_a_succeeded_job_is_not_resumed(registry: Registry, tmp_path: Path) -> None:
    source = write_parquet(rows(100), tmp_path / "in.parquet", row_group=50)
    job = start_job(registry, "credit:1", str(source), str(tmp_path / "out")).job
    with pytest.raises(ConflictError, match="succeeded already"):
        resume_job(registry, job.id)


@pytest.mark.slow
def test_a_job_killed_mid_way_resumes_and_writes_every_row_exactly_once(
    registry: Registry, tmp_path: Path
) -> None:
    source = write_parquet(rows(60_000, bad=(5, 33_333)), tmp_path / "in.parquet", row_group=2000)
    command = ["batch", "run", "credit:1", "--input", str(source), "--output", str(tmp_path / "killed"),
               "--batch-rows", "500", "--passthrough", "customer"]  # fmt: skip
    process = start_shipyard(
        registry.settings.home, *command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    jobs = Jobs(registry.meta, actor="t")
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


def test_a_csv_file_is_read_whole_every_time(registry: Registry, tmp_path: Path) -> None:
    # The header was once read by a second reader on the rows' own handle, whose read-ahead
    # could move it: some runs lost rows or took a line from the middle as the header.
    source = tmp_path / "in.csv"
    rows(40_000).to_csv(source, index=False)
    for attempt in range(4):
        job = start_job(registry, "credit:1", str(source), str(tmp_path / f"out{attempt}")).job
        assert (job.rows, job.scored, job.rejected) == (40_000, 40_000, 0)


def test_the_output_is_absolute_new_or_overwritten_and_never_a_file(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_parquet(rows(500), tmp_path / "in.parquet", row_group=250)
    monkeypatch.chdir(tmp_path)
    job = start_job(registry, "credit:1", str(source), "out").job
    assert job.output == str(tmp_path / "out")  # a resume from another folder writes here too
    with pytest.raises(BatchError, match=r"--output .*out already holds 2 part\(s\) of another job"):
        start_job(registry, "credit:1", str(source), "out")
    (tmp_path / "out" / "notes.txt").write_text("kept")
    again = start_job(registry, "credit:1", write_parquet(rows(300), tmp_path / "b.parquet", row_group=300),
                      "out", overwrite=True).job  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["notes.txt", "part-00000-000000.parquet"]
    assert again.rows == 300 and len(read_parts(tmp_path / "out")) == 300
    with pytest.raises(BatchError, match=r"--output .*in.parquet is a file; expected a folder"):
        start_job(registry, "credit:1", str(source), str(source))


def test_a_file_that_is_not_parquet_fails_the_job_naming_it(registry: Registry, tmp_path: Path) -> None:
    fake = tmp_path / "fake.parquet"
    fake.write_text("customer,age\nc1,30\n")
    with pytest.raises(BatchError, match=r"cannot read .*fake.parquet as parquet"):
        start_job(registry, "credit:1", str(fake), str(tmp_path / "out"))
    [job] = Jobs(registry.meta, actor="t").list()
    assert job.state == "failed" and "fake.parquet" in (job.error or "")


def test_a_job_whose_input_changed_is_not_offered_a_resume(registry: Registry, tmp_path: Path) -> None:
    source = write_parquet(rows(400), tmp_path / "in.parquet", row_group=200)
    options = BatchOptions(passthrough=("nope",))
    with pytest.raises(UnresumableJobError, match="start a new job without it"):
        start_job(registry, "credit:1", str(source), str(tmp_path / "out"), options)
    [job] = Jobs(registry.meta, actor="t").list()
    write_parquet(rows(401), source, row_group=200)
    with pytest.raises(UnresumableJobError, match="changed since the job started") as raised:
        resume_job(registry, job.id)
    assert "batch resume" not in str(raised.value)
