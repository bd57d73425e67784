"""The `shipyard` command, run as a real process against a fresh home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skops.io as sio

from commands import shipyard_cli


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def run(
    home: Path, *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return shipyard_cli(home, *args, cwd=cwd, timeout=timeout)


@pytest.fixture
def registered(home: Path, tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any) -> Path:
    sio.dump(credit_pipeline, tmp_path / "model.skops")
    credit.to_parquet(tmp_path / "train.parquet")
    done = run(
        home,
        "models",
        "register",
        str(tmp_path / "model.skops"),
        "--name",
        "fraud",
        "--train-data",
        str(tmp_path / "train.parquet"),
        "--target",
        "default",
        "--tag",
        "team=risk",
        "--alias",
        "staging",
    )
    assert done.returncode == 0, done.stderr
    assert "registered fraud:1" in done.stdout
    return tmp_path


def test_a_joblib_file_registers_only_with_trust_pickle(
    home: Path, tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any
) -> None:
    import joblib

    joblib.dump(credit_pipeline, tmp_path / "model.joblib")
    credit.to_parquet(tmp_path / "train.parquet")
    args = ("models", "register", str(tmp_path / "model.joblib"), "--name", "fraud")
    args += ("--train-data", str(tmp_path / "train.parquet"), "--target", "default")
    refused = run(home, *args)
    assert refused.returncode == 1
    assert "--trust-pickle" in refused.stderr
    assert json.loads(run(home, "models", "list", "--json").stdout) == []
    done = run(home, *args, "--trust-pickle")
    assert done.returncode == 0, done.stderr
    assert "registered fraud:1 (sklearn" in done.stdout


@pytest.mark.parametrize("args", [["version"], ["models", "list"], ["models", "list", "--json"]])
def test_a_reader_that_goes_away_stops_the_command_quietly_as_sigpipe_would(
    home: Path, args: list[str]
) -> None:
    env = os.environ | {"SHIPYARD_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "shipyard", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # `shipyard ... | head` after head has exited
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr  # 128 + SIGPIPE, as a shell reports it
    assert stderr == ""


def test_register_list_show_alias_tag_archive(home: Path, registered: Path) -> None:
    listed = json.loads(run(home, "models", "list", "--json").stdout)
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in listed] == [("fraud", 1, {"staging": 1})]
    shown = json.loads(run(home, "models", "show", "fraud:1", "--json").stdout)
    assert shown["tags"] == {"team": "risk"}
    assert shown["contract"]["target"] == "default"
    assert run(home, "models", "tag", "fraud:1", "owner=ana").returncode == 0
    assert run(home, "models", "unalias", "fraud@staging").returncode == 0
    assert run(home, "models", "archive", "fraud:1").returncode == 0
    model = json.loads(run(home, "models", "show", "fraud", "--json").stdout)
    assert model["versions"][0]["status"] == "archived"
    assert model["versions"][0]["tags"] == {"owner": "ana", "team": "risk"}
    history = json.loads(run(home, "models", "history", "fraud", "--json").stdout)
    assert [c["action"] for c in history][:3] == ["archive", "unalias", "tag"]
    table = run(home, "models", "show", "fraud:1")
    assert "fraud:1" in table.stdout and "country" in table.stdout


def test_contract_show_and_edit_make_a_new_version(home: Path, registered: Path) -> None:
    shown = run(home, "contract", "show", "fraud@staging")
    assert shown.returncode == 0
    text = shown.stdout.replace("on_missing: pass", "on_missing: reject")
    assert "name: age" in text
    (registered / "contract.yaml").write_text(text)
    edited = run(home, "contract", "edit", "fraud:1", "--file", str(registered / "contract.yaml"))
    assert edited.returncode == 0, edited.stderr
    assert "fraud:2" in edited.stdout
    contract = json.loads(run(home, "contract", "show", "fraud:2", "--json").stdout)
    assert next(f for f in contract["features"] if f["name"] == "income")["on_missing"] == "reject"


def test_predict_files_and_reject_bad_rows(home: Path, registered: Path, credit: pd.DataFrame) -> None:
    rows = credit.drop(columns=["default"]).head(5)
    rows.to_csv(registered / "rows.csv", index=False)
    rows.to_json(registered / "rows.jsonl", orient="records", lines=True)
    out = registered / "preds.parquet"
    done = run(
        home, "predict", "fraud@staging", "--input", str(registered / "rows.csv"), "--output", str(out)
    )
    assert done.returncode == 0, done.stderr
    written = pd.read_parquet(out)
    assert list(written.columns) == ["row", "model_version", "prediction", "proba_0", "proba_1"]
    assert len(written) == 5
    as_json = json.loads(
        run(home, "predict", "fraud:1", "--input", str(registered / "rows.jsonl"), "--json").stdout
    )
    assert len(as_json["predictions"]) == 5
    bad = rows.astype({"income": object})
    bad.loc[2, "income"] = "abc"
    bad.drop(columns=["country"]).to_csv(registered / "bad.csv", index=False)
    failed = run(home, "predict", "fraud:1", "--input", str(registered / "bad.csv"))
    assert failed.returncode == 1
    assert "feature 'income' of row 2 is 'abc': expected a number" in failed.stderr
    assert "missing column(s), expected by the contract: ['country']" in failed.stderr
    assert "Traceback" not in failed.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("models", "show", "fraud:7"), "has no version 7"),
        (("models", "show", "../../etc"), "not allowed"),
        (("models", "alias", "fraud:9", "prod"), "has no version 9"),
        (("predict", "fraud:1", "--input", "missing.csv"), "does not exist"),
    ],
)
def test_errors_are_one_clear_line_with_exit_code_1(
    home: Path, registered: Path, args: tuple[str, ...], message: str
) -> None:
    done = run(home, *args, cwd=registered)
    assert done.returncode == 1
    assert message in done.stderr
    assert done.stderr.startswith("error: ")
    assert "Traceback" not in done.stderr


def test_not_a_model_file_is_refused(home: Path, tmp_path: Path) -> None:
    (tmp_path / "model.skops").write_bytes(b"garbage")
    done = run(home, "models", "register", str(tmp_path / "model.skops"), "--name", "x")
    assert done.returncode == 1
    assert "is not a usable sklearn model" in done.stderr


def test_usage_errors_exit_2_and_debug_shows_the_traceback(home: Path) -> None:
    assert run(home, "models", "frobnicate").returncode == 2
    assert run(home, "models", "show").returncode == 2
    debug = run(home, "--debug", "models", "show", "nope")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr


def test_python_dash_m_and_version(home: Path) -> None:
    done = run(home, "version")
    assert done.returncode == 0
    assert done.stdout.strip() == "0.1.0"


@pytest.mark.slow
@pytest.mark.timeout(1200)  # about 40 s a run on an idle machine, minutes on a busy one
def test_the_demo_runs_in_a_fresh_home_and_again_in_the_same_one(home: Path) -> None:
    for run_number in (1, 2):
        done = run(home, "demo", "--rows", "2000", timeout=590)
        assert done.returncode == 0, f"demo run {run_number}:\n{done.stdout[-3000:]}\n{done.stderr}"
        for expected in (
            f"registered cancer:{run_number}",
            "credit@staging",
            "rejected",
            "expected a number",
            "outside the contract range",
            "PASSED",
            "FAILED",
            "promoted",
            "promotion refused",
            "quarantined rows",
            "audit chain verified",
            "demo finished",
        ):
            assert expected in done.stdout, f"demo run {run_number} did not show {expected!r}"
        # the good version passes the gates and is promoted, the weak one is refused: also the second time
        assert done.stdout.count("promoted: credit@production") == 1
        assert done.stdout.count("promotion refused") == 1
    assert (home / "reports").is_dir()
