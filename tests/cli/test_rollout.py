"""`shipyard deploy`, `shipyard rollout` (in process) and `shipyard server` (a real process, stopped by
SIGTERM) against a fresh home."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.commands import shipyard_in_process, start_shipyard

from homes import copy_home
from shipyard import Registry, Settings


@pytest.fixture(scope="module")
def made_home(tmp_path_factory: pytest.TempPathFactory, credit_v1_home: Path, credit: pd.DataFrame,
              credit_pipeline: Any) -> Path:  # fmt: skip
    """credit:1 (@staging), credit:2, credit:3 (archived), deployment api of credit@staging: made
    once a module (registering takes seconds), each test has a copy (`home`)."""
    home = copy_home(credit_v1_home, tmp_path_factory.mktemp("rollout-cli") / "home")
    with Registry(Settings.for_home(home)) as reg:
        for _ in range(2):
            reg.register(credit_pipeline, name="credit", train_data=credit, target="default")
        reg.set_alias("credit:1", "staging")
        reg.archive("credit:3")
    assert shipyard_in_process(home, "deploy", "create", "api", "--model", "credit@staging").returncode == 0
    return home


@pytest.fixture
def home(tmp_path: Path, made_home: Path) -> Path:
    """A copy of `made_home` of this test's own."""
    return copy_home(made_home, tmp_path / "home")


def test_deploy_and_rollout_commands_show_and_steer(home: Path, tmp_path: Path) -> None:
    shown = json.loads(shipyard_in_process(home, "deploy", "show", "api", "--json").stdout)
    assert (shown["model"], shown["alias"], shown["rollout"]) == ("credit", "staging", None)
    started = shipyard_in_process(
        home, "rollout", "start", "api", "--to", "credit:2", "--steps", "10,100", "--interval", "90s"
    )
    assert started.returncode == 0, started.stderr
    assert "canary step 1 of 2 (10%)" in started.stdout
    status = json.loads(shipyard_in_process(home, "rollout", "status", "api", "--json").stdout)
    assert status["rollout"]["state"] == "progressing"
    assert status["rollout"]["plan"]["interval"] == 90
    assert [a["weight"] for a in status["deployment"]["arms"]] == [90, 10]
    assert status["analysis_now"]["verdict"] == "wait"  # no traffic yet
    assert "analysis of the step now: wait" in shipyard_in_process(home, "rollout", "status", "api").stdout
    assert "stable 1 (90%), canary 2 (10%)" in shipyard_in_process(home, "deploy", "list").stdout
    assert "paused" in shipyard_in_process(home, "rollout", "pause", "api", "--reason", "a look").stdout
    assert "progressing" in shipyard_in_process(home, "rollout", "resume", "api").stdout
    assert (
        "aborted"
        in shipyard_in_process(home, "rollout", "abort", "api", "--reason", "changed my mind").stdout
    )
    history = json.loads(shipyard_in_process(home, "rollout", "history", "api", "--json").stdout)
    assert [e["kind"] for e in history] == ["start", "step", "pause", "resume", "aborted"]
    table = shipyard_in_process(home, "rollout", "history", "api").stdout
    assert "changed my mind" in table


def test_rollout_wait_fails_on_a_rollback_and_passes_on_a_promotion(home: Path) -> None:
    """`rollout wait` is what a CI job's exit code reads: a rollback, an abort or the timeout fail it."""
    from shipyard.rollout.rollouts import Rollouts

    assert shipyard_in_process(home, "rollout", "start", "api", "--to", "credit:2").returncode == 0
    waiting = start_shipyard(
        home,
        "rollout",
        "wait",
        "api",
        "--every",
        "0.2",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with Registry(Settings.for_home(home)) as reg:  # what the controller does when a rule fails
            rollouts = Rollouts(reg)
            rollouts.roll_back(
                rollouts.current("api"), reason="error rate 30% > 1%", verdict={"verdict": "fail"}
            )
        _, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    assert waiting.returncode == 1
    assert "rollout 1 of version 2 on api rolled back: error rate 30% > 1%" in err

    assert shipyard_in_process(home, "rollout", "start", "api", "--to", "credit:2").returncode == 0
    slow = shipyard_in_process(home, "rollout", "wait", "api", "--timeout", "1s", "--every", "0.2")
    assert slow.returncode == 1 and "rollout 2 on api is still progressing" in slow.stderr
    assert shipyard_in_process(home, "rollout", "promote", "api").returncode == 0
    done = shipyard_in_process(home, "rollout", "wait", "api")
    assert done.returncode == 0 and "rollout 2 of version 2 on api promoted" in done.stdout


BAD = [
    (("rollout", "start", "nope", "--to", "credit:2"), "no deployment named 'nope'"),
    (("rollout", "start", "api", "--to", "credit:3"), "archived"),
    (("rollout", "start", "api", "--to", "credit:2", "--steps", "50,10,100"), "must rise"),
    (("rollout", "start", "api", "--to", "credit:2", "--interval", "soon"), "--interval 'soon'"),
    (("rollout", "start", "api", "--to", "credit:2", "--strategy", "yolo"), "--strategy is 'yolo'"),
    (("rollout", "start", "api", "--to", "credit:2", "--min-requests", "0"), "min_requests"),
    (("rollout", "promote", "api"), "none has run"),
    (("rollout", "wait", "api"), "no rollout has run on 'api'"),
    (("rollout", "wait", "api", "--timeout", "soon"), "--timeout 'soon'"),
    (("deploy", "create", "api", "--model", "credit:1"), "exists"),
    (("deploy", "create", "two", "--model", "credit:1", "--sticky", "cookie:x"), "sticky"),
]


def test_bad_input_is_refused_with_a_clear_error_and_nothing_changes(home: Path) -> None:
    before = shipyard_in_process(home, "deploy", "list", "--json").stdout
    for args, says in BAD:
        done = shipyard_in_process(home, *args)
        assert done.returncode == 1, args
        assert says in done.stderr, (args, done.stderr)
    assert shipyard_in_process(home, "deploy", "list", "--json").stdout == before


def test_a_preview_file_must_hold_rows(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "smoke.jsonl"
    bad.write_text('{"age": 41}\n[1, 2]\n')
    start = ("rollout", "start", "api", "--to", "credit:2", "--strategy", "blue-green")
    done = shipyard_in_process(home, *start, "--preview-checks", str(bad))
    assert done.returncode == 1
    assert "smoke.jsonl:2 is a JSON list; expected an object of features" in done.stderr


def test_shipyard_server_runs_the_controller_and_stops_on_sigterm(home: Path) -> None:
    shipyard_in_process(
        home, "rollout", "start", "api", "--to", "credit:2", "--strategy", "blue-green", "--interval", "1s"
    )
    server = start_shipyard(
        home, "server", "--every", "0.5", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = json.loads(shipyard_in_process(home, "rollout", "status", "api", "--json").stdout)
            if status["rollout"]["step"] == 1:
                break
            time.sleep(0.5)
        # No preview rows and a 1 s preview: the controller switched all traffic to version 2.
        assert [(a["version"], a["role"], a["weight"]) for a in status["deployment"]["arms"]] == [
            (2, "stable", 100),
            (1, "canary", 0),
        ]
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert "rollout controller" in output
