"""Shadow copies: predicted after their callers were answered, logged with them, never returned,
and shed once too many wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from servers import credit_row
from shipyard.monitoring.events import EventLog
from shipyard.rollout.deployments import Arm
from shipyard.serving.served import Answer
from shipyard.serving.service import ModelService

Serve = Callable[..., ModelService]  # the `serve` fixture: arms (and limits) to a warm service
Ask = Callable[..., Awaitable[Answer]]  # the `ask` fixture: one row, predicted by deployment `api`


def test_shadow_copies_are_logged_never_returned_and_shed_when_the_queue_is_full(
    serve: Serve, ask: Ask, tmp_path: Path
) -> None:
    events = EventLog(str(tmp_path / "store"), worker="t")
    service = serve([Arm(1, "stable", 100.0), Arm(3, "shadow", 100.0)], events=events)

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
    assert counted[("credit", "api", "3", "answered")] == 20

    shed = serve([Arm(1, "stable", 100.0), Arm(3, "shadow", 100.0)], shadow_queue=0)
    asyncio.run(ask(shed, credit_row(), "busy"))
    assert shed.metrics.counters["shipyard_shadow_requests"][("credit", "api", "3", "shed")] == 1


def test_a_copy_is_logged_only_when_its_callers_request_is(serve: Serve, ask: Ask, tmp_path: Path) -> None:
    events = EventLog(str(tmp_path / "store"), worker="t")
    service = serve([Arm(1, "stable", 100.0), Arm(3, "shadow", 100.0)], events=events, log_sample=0.0)

    async def run() -> None:
        await asyncio.gather(*(ask(service, credit_row(age=20 + i), f"r{i}") for i in range(10)))
        await asyncio.sleep(0.05)

    asyncio.run(run())
    assert events.flush() == []  # neither the answers nor their copies: pairs stay together
    assert service.metrics.counters["shipyard_shadow_requests"][("credit", "api", "3", "answered")] == 10
