"""A deployment served in process: arms, sticky keys, pinned versions, shadow copies off the hot path."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from servers import credit_row
from shipyard import Registry
from shipyard.monitoring.events import EventLog
from shipyard.rollout.deployments import Arm, Deployment, Deployments
from shipyard.rollout.routing import point
from shipyard.serving.metrics import Metrics
from shipyard.serving.served import Answer, Limits
from shipyard.serving.service import ModelService


@pytest.fixture
def registry(sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any) -> Registry:
    for _ in range(3):
        sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    Deployments(sqlite_registry).create("api", "credit:1", sticky="feature:country")
    return sqlite_registry


def serve(
    registry: Registry, arms: list[Arm], *, events: EventLog | None = None, **limits: Any
) -> ModelService:
    deployment = Deployments(registry).set_arms("api", arms, reason="test")
    service = ModelService(limits=Limits(**limits), metrics=Metrics(), events=events)
    loaded = {a.version: registry.load(f"credit:{a.version}") for a in deployment.arms}
    served = service.add_deployment(deployment, loaded)
    service.warm_up()
    assert service.models["api"] is served
    return service


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


def test_a_deployment_is_authorized_as_the_model_it_serves(registry: Registry) -> None:
    service = serve(registry, [Arm(1, "stable", 100.0)])
    assert service.model_of("api") == "credit"  # a key scoped to credit* may call 'api'
    assert service.model_of("elsewhere") == "elsewhere"
    assert service.model_of(None) is None


def test_a_feature_key_keeps_each_value_on_one_arm_with_the_canary_share(registry: Registry) -> None:
    service = serve(registry, [Arm(1, "stable", 70.0), Arm(2, "canary", 30.0)])
    countries = ["DE", "FR", "ES", "IT", "NL"]

    async def run() -> dict[str, set[int]]:
        seen: dict[str, set[int]] = {}
        for i in range(100):
            country = countries[i % 5]
            answer = await ask(service, credit_row(country=country, age=20 + i % 50), f"r{i}")
            seen.setdefault(country, set()).add(answer.version.version)
        return seen

    seen = asyncio.run(run())
    assert all(len(v) == 1 for v in seen.values())
    expected = {c: 2 if point(c) < 30 else 1 for c in countries}
    assert {c: next(iter(v)) for c, v in seen.items()} == expected


def test_a_pinned_version_answers_with_that_arm_and_unknown_versions_are_refused(registry: Registry) -> None:
    service = serve(registry, [Arm(1, "stable", 100.0), Arm(2, "canary", 0.0)])
    answer = asyncio.run(ask(service, credit_row(), "pinned", version="2"))
    assert answer.version.version == 2  # a weight-0 arm is still reachable by name (previews)
    assert asyncio.run(ask(service, credit_row(), "routed")).version.version == 1
    with pytest.raises(Exception, match="version '3' of 'api' is not served here"):
        service.route("api", "3")


def test_shadow_copies_are_logged_never_returned_and_shed_when_the_queue_is_full(
    registry: Registry, tmp_path: Path
) -> None:
    events = EventLog(str(tmp_path / "store"), worker="t")
    service = serve(registry, [Arm(1, "stable", 100.0), Arm(3, "shadow", 100.0)], events=events)

    async def run() -> list[Answer]:
        answers = await asyncio.gather(*(ask(service, credit_row(age=20 + i), f"r{i}") for i in range(20)))
        await asyncio.sleep(0.05)  # the copies run after the callers were answered
        return list(answers)

    answers = asyncio.run(run())
    assert {a.version.version for a in answers} == {1}
    table = pq.ParquetDataset(events.flush()).read()
    copies = table.filter(pc.equal(table["protocol"], "shadow"))
    assert sorted(copies["request_id"].to_pylist()) == sorted(f"r{i}" for i in range(20))
    assert set(copies["version"].to_pylist()) == {3}
    counted = service.metrics.counters["shipyard_shadow_requests"]
    assert counted[("api", "3", "answered")] == 20

    shed = serve(registry, [Arm(1, "stable", 100.0), Arm(3, "shadow", 100.0)], shadow_queue=0)
    asyncio.run(ask(shed, credit_row(), "busy"))
    assert shed.metrics.counters["shipyard_shadow_requests"][("api", "3", "shed")] == 1


def test_new_arms_replace_the_router_keeping_loaded_lanes(registry: Registry) -> None:
    served = serve(registry, [Arm(1, "stable", 100.0)]).models["api"]
    first_lane = served.lanes[1]
    deployment: Deployment = Deployments(registry).set_arms(
        "api", [Arm(1, "stable", 50.0), Arm(2, "canary", 50.0)], reason="test"
    )
    served.deploy(deployment, {1: first_lane.loaded, 2: registry.load("credit:2")})
    assert served.lanes[1] is first_lane  # its queue and batch statistics survive
    assert served.router is not None and served.router.canary == Arm(2, "canary", 50.0)
    metrics = served.metrics.gauges["shipyard_model_ready"]
    assert metrics[("api", "2")] == 1.0


def test_a_copy_is_logged_only_when_its_callers_request_is(registry: Registry, tmp_path: Path) -> None:
    events = EventLog(str(tmp_path / "store"), worker="t")
    service = serve(
        registry, [Arm(1, "stable", 100.0), Arm(3, "shadow", 100.0)], events=events, log_sample=0.0
    )

    async def run() -> None:
        await asyncio.gather(*(ask(service, credit_row(age=20 + i), f"r{i}") for i in range(10)))
        await asyncio.sleep(0.05)

    asyncio.run(run())
    assert events.flush() == []  # neither the answers nor their copies: pairs stay together
    assert service.metrics.counters["shipyard_shadow_requests"][("api", "3", "answered")] == 10
