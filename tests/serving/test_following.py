"""What a worker follows while it serves: the version its alias points to, a deployment's arms, and
the rollout controller that moves them."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from servers import ServerProcess, credit_row
from shipyard import Registry, Settings
from shipyard.core.refs import ModelRef
from shipyard.rollout.deployments import Arm, Deployments
from shipyard.serving.following import follow_aliases, follow_deployment, start_controller
from shipyard.serving.metrics import Metrics
from shipyard.serving.served import Limits
from shipyard.serving.service import ModelService

Serve = Callable[..., ModelService]  # the `serve` fixture: arms (and limits) to a warm service


async def until(
    done: Callable[[], bool], follower: Coroutine[Any, Any, None], change: Callable[[], Any]
) -> None:
    """Run `follower`, make `change`, and wait (ten seconds at most) until `done`; then stop it."""
    task = asyncio.create_task(follower)
    await asyncio.sleep(0.1)
    change()
    deadline = time.monotonic() + 10
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_a_worker_swaps_in_the_version_its_alias_moved_to(
    sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any
) -> None:
    registry = sqlite_registry
    registry.register(credit_pipeline, name="credit", train_data=credit, target="default", alias="staging")
    service = ModelService(limits=Limits(), metrics=Metrics())
    served = service.add(ModelRef.parse("credit@staging"), registry.load("credit@staging"))

    def move() -> None:
        registry.register(
            credit_pipeline, name="credit", train_data=credit, target="default", alias="staging"
        )

    follower = follow_aliases(registry.settings, service, interval=0.05, trust_pickle=False)
    asyncio.run(until(lambda: served.version.version == 2, follower, move))
    assert served.version.version == 2
    assert service.metrics.gauges["shipyard_model_ready"][("credit", "", "2")] == 1.0


def test_a_worker_routes_by_new_arms_once_their_versions_are_loaded(
    api_registry: Registry, serve: Serve
) -> None:
    service = serve([Arm(1, "stable", 100.0)])
    served = service.models["api"]

    def move() -> None:
        arms = [Arm(1, "stable", 50.0), Arm(2, "canary", 50.0)]
        Deployments(api_registry).set_arms("api", arms, reason="test")

    follower = follow_deployment(api_registry.settings, service, served, interval=0.05, trust_pickle=False)
    asyncio.run(until(lambda: served.router is not None and 2 in served.lanes, follower, move))
    assert served.router is not None and served.router.canary == Arm(2, "canary", 50.0)
    assert served.lanes[2].loaded.version.version == 2
    assert service.metrics.gauges["shipyard_model_load_seconds"][("credit", "api", "2")] > 0


def test_the_rollout_controller_runs_on_a_thread_until_stopped(sqlite_registry: Registry) -> None:
    controller = start_controller(sqlite_registry.settings, trust_pickle=False)
    assert controller is not None and controller.thread.is_alive()
    controller.stop()
    assert not controller.thread.is_alive()


def test_a_moved_alias_is_swapped_in_without_failing_a_request(
    two_workers: ServerProcess, home: Path, credit: pd.DataFrame, credit_pipeline: Any
) -> None:
    statuses: list[int] = []
    versions: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=two_workers.url, timeout=30) as client:
            while not stop.is_set():
                response = client.post("/v1/models/credit/predict", json={"instances": [credit_row()]})
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.append(response.json()["version"])

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        time.sleep(0.5)
        with Registry(replace(Settings.for_home(home), protected_aliases=()), actor="tester") as registry:
            registry.register(
                credit_pipeline, name="credit", train_data=credit, target="default", alias="production"
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not versions or versions[-1] != 2):
            time.sleep(0.1)
        time.sleep(1.5)  # both workers have followed by now (0.5 s interval plus a load)
    finally:
        stop.set()
        thread.join()
    assert set(statuses) == {200}
    assert versions[0] == 1
    assert versions[-1] == 2
    assert two_workers.http.get("/readyz").json()["models"] == {"credit": 2}
