"""The scheduler running real processes: due times, missed runs, the principal a run acts as."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shipyard import Registry
from shipyard.scheduling.scheduler import Scheduler
from shipyard.scheduling.schedules import Schedules
from shipyard.security.context import Context
from shipyard.store.metadata import utcnow

Backdate = Callable[[Schedules, str, int], None]


def test_missed_runs_run_once_and_a_due_time_runs_once(
    registry: Registry, schedules: Schedules, backdate: Backdate
) -> None:
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
    registry: Registry, schedules: Schedules, backdate: Backdate, tmp_path: Path
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


def test_a_run_acts_as_whoever_added_its_schedule_and_stops_with_its_key(
    registry: Registry, credit: Any, credit_pipeline: Any, backdate: Backdate, tmp_path: Path
) -> None:
    from shipyard.security.keys import Keys, KeyVerifier

    registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    credit.drop(columns=["default"]).head(50).to_parquet(tmp_path / "rows.parquet")
    keys = Keys(registry)
    bot = KeyVerifier(registry.meta).authenticate(
        keys.create("fraud-bot", role="deployer", models=["fraud*"]).secret
    )
    schedules = Schedules(Context(registry.settings, registry.meta, bot, bot.name))
    args = ["batch", "run", "credit:1", "--input", str(tmp_path / "rows.parquet")]
    args += ["--output", str(tmp_path / "o")]
    schedules.add("nightly", "0 2 * * *", args)
    assert schedules.get("nightly").to_dict()["runs_as"] == "fraud-bot (deployer, models fraud*)"
    from shipyard.errors import PermissionDeniedError

    with pytest.raises(PermissionDeniedError, match="run-commands"):  # the Python API checks it too
        schedules.add("retrain", "0 3 * * *", ["monitor", "watch", "fraud", "--on-drift", "true"])
    backdate(schedules, "nightly", days=1)
    env = {"SHIPYARD_HOME": str(registry.settings.home), "SHIPYARD_DB_URL": registry.settings.db_url}
    admin = Context(registry.settings, registry.meta, registry.principal, "scheduler")
    runner = Scheduler(Schedules(admin), env=env)  # the scheduler itself runs as the local admin
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
