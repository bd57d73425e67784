"""The schedule commands and the scheduler as a user runs them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml
from tests.commands import shipyard_cli, shipyard_environment, shipyard_in_process

from shipyard import Registry
from shipyard.scheduling.schedules import Schedules

Backdate = Callable[[Schedules, str, int], None]


def test_the_schedule_commands(tmp_path: Path) -> None:
    env = shipyard_environment(tmp_path / "home")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return shipyard_in_process(tmp_path / "home", *args, env=env)

    added = run("schedule", "add", "nightly", "--cron", "0 2 * * *", "--", "batch", "list", "--json")
    assert added.returncode == 0, added.stderr
    [listed] = json.loads(run("schedule", "list", "--json").stdout)
    assert listed["command"] == ["shipyard", "batch", "list", "--json"]
    unsafe = run("schedule", "export", "nightly", "--k8s")
    assert "warning: no --secret" in unsafe.stderr  # its pod would score against an empty registry
    exported = yaml.safe_load(unsafe.stdout)
    assert "warning" not in run("schedule", "export", "nightly", "--k8s", "--secret", "store").stderr
    assert exported["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "shipyard"
    ]
    bad = run("schedule", "add", "weekly", "--cron", "every monday", "--", "batch", "list")
    assert bad.returncode == 1 and "not a cron expression" in bad.stderr
    from shipyard import Settings
    from shipyard.security.keys import Keys

    with Registry(Settings.from_env(env)) as reg:
        env["SHIPYARD_API_KEY"] = Keys(reg).create("dep", role="deployer").secret
    command = ("--", "monitor", "watch", "credit", "--on-drift", "touch /tmp/x")
    code = run("schedule", "add", "retrain", "--cron", "0 3 * * *", *command)
    assert code.returncode == 1 and "may not run-commands" in code.stderr  # the scheduler would run it
    del env["SHIPYARD_API_KEY"]
    once = shipyard_cli(tmp_path / "home", "scheduler", "--once", env=env)  # it sets up logging: a process
    assert once.returncode == 0 and "nightly" not in once.stdout  # nothing due yet
    assert run("schedule", "remove", "nightly").returncode == 0
