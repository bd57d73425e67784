"""Two `shipyard serve --deployment` replicas on PostgreSQL + S3, as on two machines: a canary
rollout moves both replicas' traffic, and its controller runs once across them (a lease).

The registry's metadata is in PostgreSQL and everything else in S3 (moto's server, reached only
through the AWS variables): the versions' artifacts, which each replica loads, and the
prediction-log segments both replicas write and the controller's analysis reads.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sqlalchemy import select
from tests.commands import shipyard_cli
from tests.s3.s3servers import BUCKET, S3Server, keys, use

from servers import ServerProcess
from shipyard import Registry, Settings
from shipyard.rollout.rollouts import Rollouts
from shipyard.store.schema import leases

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def settings(
    moto_server: S3Server, pg_schema_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Settings:
    """A registry on PostgreSQL (a schema of its own) and S3 (a prefix of its own on moto)."""
    use(moto_server, monkeypatch)
    store_url = f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"
    return Settings(home=tmp_path, db_url=pg_schema_url, store_url=store_url)


def test_a_canary_moves_both_replicas_and_one_controller_runs_it(
    moto_server: S3Server, settings: Settings, small_credit: pd.DataFrame, small_model: Any
) -> None:
    tmp_path, store_url = settings.home, settings.store_url
    with Registry(settings, actor="tester") as reg:
        for _ in range(2):
            reg.register(small_model, name="credit", train_data=small_credit, target="default")
        reg.set_alias("credit:1", "staging")
    env = {"SHIPYARD_DB_URL": settings.db_url, "SHIPYARD_STORE_URL": store_url, **moto_server.env()}

    def cli(*args: str) -> str:
        done = shipyard_cli(tmp_path, *args, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("deploy", "create", "api", "--model", "credit@staging")
    servers = [ServerProcess(tmp_path, [], "--deployment", "api", "--follow-interval", "0.5", env=env)]
    servers.append(ServerProcess(tmp_path, [], "--deployment", "api", "--follow-interval", "0.5", env=env))
    answers: list[tuple[int, int]] = []  # (replica, version that answered)
    stop = threading.Event()
    rows = small_credit.drop(columns="default").head(50).to_dict("records")
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]

    def traffic() -> None:
        i = 0
        while not stop.is_set():
            n = i % 2
            i += 1
            try:
                reply = servers[n].http.post("/v1/models/api/predict", json={"instances": [rows[i % 50]]})
            except httpx.TransportError:
                continue
            if reply.status_code == 200:
                answers.append((n, reply.json()["version"]))

    sending = threading.Thread(target=traffic, daemon=True)
    try:
        for server in servers:
            server.wait_ready()
        sending.start()
        rules = tmp_path / "rules.yaml"  # small windows for a fast test; latency left loose
        rules.write_text("min_requests: 20\nmax_latency_ratio_p95: 5\nmax_latency_ratio_p99: 10\n")
        cli(
            "rollout", "start", "api", "--to", "credit:2", "--steps", "50,100",
            "--interval", "2s", "--rules", str(rules),
        )  # fmt: skip
        deadline = time.monotonic() + 90
        rollouts = Rollouts(Registry(settings))
        try:
            while (current := rollouts.current("api")) is not None and current.active:
                assert time.monotonic() < deadline, f"the rollout did not end: {current}"
                time.sleep(0.5)
        finally:
            rollouts.context.close()
        assert current is not None and current.state == "promoted", current
        assert {n for n, version in answers if version == 2} == {0, 1}  # the canary on both replicas
        deadline = time.monotonic() + 10  # each replica follows the promotion within its interval
        while True:
            answers.clear()
            time.sleep(1)
            if {v for _, v in answers} == {2} and {n for n, _ in answers} == {0, 1}:
                break
            assert time.monotonic() < deadline, f"the replicas still answer with {set(answers)}"
        with Registry(settings) as reg, reg.meta.read() as conn:
            holders = conn.execute(select(leases.c.holder).where(leases.c.name == "rollout-controller")).all()
        assert len(holders) == 1 and int(holders[0][0].split(":")[1]) in {s.pid for s in servers}
    finally:
        stop.set()
        for server in servers:
            server.terminate()
    history = [
        e for e in json.loads(cli("rollout", "history", "api", "--json")) if e["rollout"] == current.id
    ]
    assert [e["kind"] for e in history if e["kind"] != "wait"] == ["start", "step", "promoted"]
    written = keys(moto_server, store_url)
    assert any("/events/credit/" in k for k in written) and any("/sha256/" in k for k in written)
