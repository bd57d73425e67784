"""Schedules on a real store, run as real processes: due times, missed runs, one at a time, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import update

from shipyard import Registry
from shipyard.batch.schedules import Scheduler, Schedules, kubernetes_cronjob
from shipyard.errors import BatchError, ConflictError, NotFoundError
from shipyard.store.metadata import utcnow
from shipyard.store.schema import schedules as schedules_table


@pytest.fixture
def schedules(registry: Registry) -> Schedules:
    return Schedules(registry.meta, actor="tester")


def backdate(schedules: Schedules, name: str, days: int) -> None:
    """Pretend the schedule was added `days` ago (and never run since)."""
    schedules.meta.write(
        lambda conn: conn.execute(
            update(schedules_table)
            .where(schedules_table.c.name == name)
            .values(created_at=utcnow() - timedelta(days=days))
        )
    )


def test_bad_schedules_are_refused(schedules: Schedules) -> None:
    with pytest.raises(BatchError, match=r"cron expression \(field 1, the minute, is '99'; expected 0-59\)"):
        schedules.add("nightly", "99 2 * * *", ["batch", "list"])
    with pytest.raises(BatchError, match="Expected one of batch"):
        schedules.add("nightly", "0 2 * * *", ["serve", "fraud@production"])
    schedules.add("nightly", "0 2 * * *", ["batch", "list"])
    with pytest.raises(ConflictError, match="exists"):
        schedules.add("nightly", "0 3 * * *", ["batch", "list"])
    with pytest.raises(NotFoundError):
        schedules.remove("weekly")
    assert [s.name for s in schedules.list()] == ["nightly"]


def test_missed_runs_run_once_and_a_due_time_runs_once(registry: Registry, schedules: Schedules) -> None:
    schedules.add("nightly", "0 2 * * *", ["batch", "list", "--json"])
    now = utcnow()
    assert Scheduler(schedules).tick(now) == []  # added now: the first 02:00 is still ahead
    backdate(schedules, "nightly", days=3)  # three nights without a scheduler
    env = {"SHIPYARD_HOME": str(registry.settings.home), "SHIPYARD_DB_URL": registry.settings.db_url}
    runner = Scheduler(schedules, env=env)
    [started] = runner.tick(now)
    assert started.status == "running"
    assert started.due_at == schedules.get("nightly").due(now + timedelta(days=1)) - timedelta(days=1)
    assert runner.tick(now) == []  # that due time is taken; the missed ones are not run one by one
    [ended] = runner.reap(wait=True)
    assert (ended.status, ended.exit_code) == ("succeeded", 0), ended.output
    assert json.loads(ended.output) == []  # `batch list --json` of an empty store
    assert [r.status for r in schedules.runs("nightly")] == ["succeeded"]
    assert Scheduler(schedules).tick(now + timedelta(days=1))[0].due_at == started.due_at + timedelta(days=1)


def test_a_run_reads_the_files_of_its_due_day(
    registry: Registry, schedules: Schedules, tmp_path: Path
) -> None:
    args = ["batch", "run", "m:1", "--input", f"{tmp_path}/{{yesterday}}.parquet", "--output", "p/{today}"]
    schedules.add("nightly", "0 2 * * *", args)
    backdate(schedules, "nightly", days=3)
    env = {"SHIPYARD_HOME": str(registry.settings.home), "SHIPYARD_DB_URL": registry.settings.db_url}
    runner = Scheduler(schedules, env=env)
    [started] = runner.tick(utcnow())
    [ended] = runner.reap(wait=True)
    day = started.due_at.date()
    # No such file: the refusal names the pattern as the run read it, dated by its due time.
    assert f"{tmp_path}/{day - timedelta(days=1)}.parquet' matches no file" in ended.output


def test_a_schedule_runs_one_at_a_time(schedules: Schedules) -> None:
    schedules.add("hourly", "0 * * * *", ["batch", "list"])
    backdate(schedules, "hourly", days=1)
    now = utcnow()
    first = schedules.claim("hourly", now - timedelta(hours=1))
    assert first is not None and first.status == "running"  # held by this live process
    second = schedules.claim("hourly", now)
    assert second is not None and second.status == "skipped"
    assert "still running" in second.output
    assert schedules.claim("hourly", now) is None  # another scheduler cannot take it again


def test_export_as_a_kubernetes_cronjob(schedules: Schedules) -> None:
    added = schedules.add(
        "nightly", "0 2 * * *", ["batch", "run", "fraud@production", "--input", "s3://b/*.parquet"]
    )
    job = kubernetes_cronjob(added, image="registry.local/shipyard:1", secret="shipyard-store")
    spec = job["spec"]
    assert (job["kind"], spec["schedule"], spec["concurrencyPolicy"]) == ("CronJob", "0 2 * * *", "Forbid")
    container = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["batch", "run", "fraud@production", "--input", "s3://b/*.parquet"]
    assert container["envFrom"] == [{"secretRef": {"name": "shipyard-store"}}]
    odd_name = schedules.add("Nightly_Fraud", "0 2 * * *", ["batch", "list"])
    odd = kubernetes_cronjob(odd_name, image="i", secret=None)
    assert odd["metadata"]["name"] == "nightly-fraud"  # what Kubernetes takes (RFC 1123, lower case)
    assert odd["metadata"]["annotations"] == {"shipyard.dev/schedule": "Nightly_Fraud"}


def test_the_schedule_commands(tmp_path: Path) -> None:
    env = os.environ | {"SHIPYARD_HOME": str(tmp_path / "home")}
    env.pop("SHIPYARD_DB_URL", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shipyard", *args], env=env, capture_output=True, text=True, check=False
        )

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
    once = run("scheduler", "--once")
    assert once.returncode == 0 and "nightly" not in once.stdout  # nothing due yet
    assert run("schedule", "remove", "nightly").returncode == 0


def test_a_run_left_by_a_dead_scheduler_no_longer_holds_the_schedule(schedules: Schedules) -> None:
    from shipyard.store.schema import schedule_runs

    schedules.add("hourly", "0 * * * *", ["batch", "list"])
    backdate(schedules, "hourly", days=1)
    now = utcnow()
    orphan = schedules.claim("hourly", now - timedelta(hours=1))
    assert orphan is not None
    schedules.meta.write(  # its scheduler was a process that no longer exists
        lambda conn: conn.execute(
            update(schedule_runs).where(schedule_runs.c.id == orphan.id).values(holder="nohost:999999")
        )
    )
    fresh = schedules.claim("hourly", now)
    assert fresh is not None and fresh.status == "running"
    [latest, old] = schedules.runs("hourly")
    assert latest.id == fresh.id
    assert (old.status, old.output) == ("failed", "the scheduler stopped during the run")


def test_a_run_acts_as_whoever_added_its_schedule_and_stops_with_its_key(
    registry: Registry, credit: Any, credit_pipeline: Any, tmp_path: Path
) -> None:
    from shipyard.security.keys import Keys, KeyVerifier

    registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    credit.drop(columns=["default"]).head(50).to_parquet(tmp_path / "rows.parquet")
    keys = Keys(registry)
    bot = KeyVerifier(registry.meta).authenticate(
        keys.create("fraud-bot", role="deployer", models=["fraud*"]).secret
    )
    schedules = Schedules(registry.meta, actor=bot.name, principal=bot)
    args = ["batch", "run", "credit:1", "--input", str(tmp_path / "rows.parquet")]
    args += ["--output", str(tmp_path / "o")]
    schedules.add("nightly", "0 2 * * *", args)
    assert schedules.get("nightly").to_dict()["runs_as"] == "fraud-bot (deployer, models fraud*)"
    from shipyard.errors import PermissionDeniedError

    with pytest.raises(PermissionDeniedError, match="run-commands"):  # the Python API checks it too
        schedules.add("retrain", "0 3 * * *", ["monitor", "watch", "fraud", "--on-drift", "true"])
    backdate(schedules, "nightly", days=1)
    env = {"SHIPYARD_HOME": str(registry.settings.home), "SHIPYARD_DB_URL": registry.settings.db_url}
    runner = Scheduler(schedules, env=env)  # the scheduler itself runs as the local admin
    runner.tick()
    [ended] = runner.reap(wait=True)
    assert ended.status == "failed"
    assert "fraud-bot (deployer, models fraud*) may not read model 'credit'" in ended.output
    assert not (tmp_path / "o").exists()
    keys.revoke("fraud-bot", reason="left")
    [refused] = runner.tick(utcnow() + timedelta(days=1))
    assert (refused.status, refused.exit_code) == ("failed", 126)
    assert "'fraud-bot' that added this schedule is revoked" in refused.output
    assert runner.running == {}  # nothing was started


def test_a_run_cannot_ask_to_act_as_more_than_its_own_principal(registry: Registry) -> None:
    from dataclasses import replace

    from shipyard.errors import PermissionDeniedError
    from shipyard.security.keys import Keys

    keys = Keys(registry)
    secret = keys.create("reader-bot", role="reader").secret
    wider = json.dumps({"name": "reader-bot", "role": "admin", "models": []})
    settings = replace(registry.settings, api_key=secret, run_as=wider)
    with pytest.raises(PermissionDeniedError, match="no stronger than its own"):
        Registry(settings)
    narrower = json.dumps({"name": "reader-bot", "role": "reader", "models": ["fraud*"]})
    with Registry(replace(registry.settings, api_key=secret, run_as=narrower)) as reg:
        assert str(reg.principal) == "reader-bot (reader, models fraud*)"
