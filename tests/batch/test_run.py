"""Starting and resuming jobs: options, inputs and the output folder checked first."""

from __future__ import annotations

from pathlib import Path

import pytest

from credit_files import read_parts, rows, write_parquet
from shipyard import Registry
from shipyard.batch.jobs import Jobs
from shipyard.batch.run import BatchOptions, start_job
from shipyard.errors import BatchError, InputError
from shipyard.security.context import Context


def test_bad_inputs_and_options_are_refused_before_any_job(
    registry: Registry, context: Context, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="matches no file"):
        start_job(registry, "credit:1", str(tmp_path / "none-*.parquet"), str(tmp_path / "out"))
    (tmp_path / "rows.xlsx").write_bytes(b"x")
    with pytest.raises(InputError, match="suffix '.xlsx'"):
        start_job(registry, "credit:1", str(tmp_path / "rows.xlsx"), str(tmp_path / "out"))
    with pytest.raises(BatchError, match="--format is 'xml'"):
        BatchOptions(format="xml")
    assert Jobs(context).list() == []


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
