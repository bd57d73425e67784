"""Fixtures for serving tests: a registered credit model and a real server for it; a deployment
served in process, and a way to ask it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from homes import copy_home, home_made_once
from servers import ServerProcess
from shipyard import Registry, Settings
from shipyard.monitoring.events import EventLog
from shipyard.rollout.deployments import Arm, Deployments
from shipyard.serving.metrics import Metrics
from shipyard.serving.served import Answer, Limits
from shipyard.serving.service import ModelService


@pytest.fixture(scope="module")
def credit_home(tmp_path_factory: pytest.TempPathFactory, production_home: Path) -> Path:
    """A Shipyard home with the credit model registered as `credit@production` (version 1)."""
    return copy_home(production_home, tmp_path_factory.mktemp("serving") / "home")


@pytest.fixture(scope="module")
def credit_server(credit_home: Path) -> Iterator[ServerProcess]:
    """`shipyard serve credit@production` with small limits, REST and gRPC."""
    server = ServerProcess(
        credit_home, ["credit@production"], "--max-rows", "50", "--max-body-bytes", "100000"
    )
    try:
        yield server.wait_ready()
    finally:
        server.terminate()


@pytest.fixture
def home(tmp_path: Path, production_home: Path) -> Path:
    """A Shipyard home of its own with `credit@production` (version 1), for a test that changes it."""
    shutil.copytree(production_home, tmp_path, dirs_exist_ok=True)
    return tmp_path


@pytest.fixture
def two_workers(home: Path) -> Iterator[ServerProcess]:
    """`shipyard serve credit@production` of `home` with two workers, following the alias every 0.5 s."""
    server = ServerProcess(home, ["credit@production"], "--workers", "2", "--reload-interval", "0.5")
    try:
        yield server.wait_ready()
    finally:
        server.terminate()


def _unguarded(home: Path) -> Settings:
    """Settings without protected aliases: these tests move `production` freely, gates aside."""
    return replace(Settings.for_home(home), protected_aliases=())


@pytest.fixture(scope="session")
def api_home(credit_v1_home: Path, credit: pd.DataFrame, credit_pipeline: Any) -> Path:
    """Versions 1 to 3 of `credit` and deployment `api` of `credit:1`, made once: copy it."""

    def fill(registry: Registry) -> None:
        for _ in range(2):
            registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
        Deployments(registry).create("api", "credit:1", sticky="feature:country")

    return home_made_once(copy_home(credit_v1_home, credit_v1_home.parent / "credit-api-home"), fill)


@pytest.fixture
def api_registry(request: pytest.FixtureRequest, tmp_path: Path, api_home: Path) -> Registry:
    """Versions 1 to 3 of `credit`, and deployment `api` of `credit:1`, sticky by feature country:
    the `sqlite_registry`, opened on a copy of `api_home`."""
    copy_home(api_home, tmp_path / "home")
    registry: Registry = request.getfixturevalue("sqlite_registry")
    return registry


@pytest.fixture
def serve(api_registry: Registry) -> Callable[..., ModelService]:
    """Serve deployment `api` in process with the given arms (and limits); warmed up."""

    def serve(arms: list[Arm], *, events: EventLog | None = None, **limits: Any) -> ModelService:
        deployment = Deployments(api_registry).set_arms("api", arms, reason="test")
        service = ModelService(limits=Limits(**limits), metrics=Metrics(), events=events)
        loaded = {a.version: api_registry.load(f"credit:{a.version}") for a in deployment.arms}
        served = service.add_deployment(deployment, loaded)
        service.warm_up()
        assert service.models["api"] is served
        return service

    return serve


@pytest.fixture
def ask() -> Callable[..., Awaitable[Answer]]:
    """Predict one row with deployment `api` of a service, as the REST transport would."""

    async def ask(
        service: ModelService, row: dict[str, Any], request_id: str, version: str | None = None
    ) -> Answer:
        served = service.models["api"]
        columns = {k: [v] for k, v in row.items()}
        return await service.predict(
            served,
            columns,
            1,
            protocol="rest",
            request_id=request_id,
            arrived=time.perf_counter(),
            key=served.routing_key(None, columns),
            version=version,
        )

    return ask
