"""`shipyard batch`: run a job over files, then its status and the list of jobs, in tables or JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from tests.commands import shipyard_in_process


def test_no_jobs_yet_says_how_to_start_one(home: Path) -> None:
    done = shipyard_in_process(home, "batch", "list")
    assert done.returncode == 0, done.stderr
    assert "no batch jobs yet; start one with 'shipyard batch run" in done.stdout
    assert json.loads(shipyard_in_process(home, "batch", "list", "--json").stdout) == []


def test_a_run_scores_the_file_keeps_bad_rows_aside_and_is_listed(
    home: Path, registered: Path, credit: pd.DataFrame
) -> None:
    rows = credit.drop(columns=["default"]).head(200).astype({"income": object})
    rows.loc[7, "income"] = "abc"
    rows.astype({"income": str}).to_parquet(registered / "in.parquet")  # Parquet holds one type a column
    output = str(registered / "out-{today}")
    ran = shipyard_in_process(
        home, "batch", "run", "fraud:1", "--input", str(registered / "in.parquet"), "--output", output,
        "--max-reject-share", "0.05", "--json",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    job = json.loads(ran.stdout)
    assert (job["state"], job["rows"], job["scored"], job["rejected"]) == ("succeeded", 200, 199, 1)
    assert job["rows_per_second"] > 0
    today = datetime.now(UTC).date().isoformat()
    assert job["output"].endswith(f"out-{today}")  # {today} became the run's date
    assert (registered / f"out-{today}" / "rejects").is_dir()

    status = shipyard_in_process(home, "batch", "status", job["id"])
    assert status.returncode == 0, status.stderr
    shown = " ".join(status.stdout.split())
    assert f"batch job {job['id']}" in shown and "fraud:1 (version 1)" in shown
    assert "200 = 199 scored + 1 rejected" in shown
    listed = json.loads(shipyard_in_process(home, "batch", "list", "--json").stdout)
    assert [(j["id"], j["state"]) for j in listed] == [(job["id"], "succeeded")]
    table = shipyard_in_process(home, "batch", "list")
    assert job["id"] in table.stdout and "succeeded" in table.stdout


def test_an_unknown_job_is_refused_naming_it(home: Path, registered: Path) -> None:
    done = shipyard_in_process(home, "batch", "status", "no-such-job")
    assert done.returncode == 1
    assert "no batch job 'no-such-job'; 'shipyard batch list' shows the jobs" in done.stderr
