"""The one predict path in process: adaptive batching, per-caller answers and errors, the event log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from servers import credit_row
from shipyard import ContractViolationError, Registry, RequestTooLargeError
from shipyard.core.refs import ModelRef
from shipyard.monitoring.events import EventLog
from shipyard.serving.metrics import ROWS_BUCKETS, Metrics
from shipyard.serving.served import Limits
from shipyard.serving.service import ModelService


@pytest.fixture
def loaded(sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any) -> Any:
    sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    return sqlite_registry.load("credit:1")


def make_service(loaded: Any, *, events: EventLog | None = None, **limits: Any) -> ModelService:
    service = ModelService(limits=Limits(**limits), metrics=Metrics(), events=events)
    service.add(ModelRef.parse("credit:1"), loaded)
    service.warm_up()
    return service


def caller_rows(i: int) -> list[dict[str, Any]]:
    return [credit_row(age=20 + (i * 7 + k) % 60, income=1000.0 + 37 * i + k) for k in range(1 + i % 3)]


async def call(service: ModelService, rows: list[dict[str, Any]], request_id: str) -> Any:
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    served = service.route("credit")
    return await service.predict(
        served, columns, len(rows), protocol="test", request_id=request_id, arrived=time.perf_counter()
    )


def test_concurrent_callers_share_calls_and_each_gets_its_own_rows(loaded: Any) -> None:
    service = make_service(loaded)
    bad = {5, 17, 30}

    async def run() -> list[Any]:
        tasks = []
        for i in range(40):
            rows = caller_rows(i)
            if i in bad:
                rows[-1] = {**rows[-1], "country": 7, "age": "x"}
            tasks.append(call(service, rows, f"r{i}"))
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(run())
    assert service.models["credit"].batcher.calls < 10
    for i, result in enumerate(results):
        rows = caller_rows(i)
        if i in bad:
            assert isinstance(result, ContractViolationError)
            assert {(v.row, v.feature) for v in result.violations} == {
                (len(rows) - 1, "age"),
                (len(rows) - 1, "country"),
            }
            continue
        assert result.request_id == f"r{i}"
        direct = loaded.predict(rows)
        assert result.predictions.values.tolist() == direct.values.tolist()
        np.testing.assert_allclose(result.predictions.probabilities, direct.probabilities)


def test_a_lone_request_does_not_wait_for_a_batch(loaded: Any) -> None:
    service = make_service(loaded, max_wait_ms=5000)

    async def run() -> float:
        started = time.perf_counter()
        for i in range(3):
            await call(service, caller_rows(i), f"r{i}")
        return time.perf_counter() - started

    assert asyncio.run(run()) < 4.0  # one wait would take 5 s


def test_batches_never_exceed_max_batch_rows(loaded: Any) -> None:
    service = make_service(loaded, max_batch_rows=7)

    async def run() -> None:
        await asyncio.gather(*(call(service, [credit_row(age=20 + i)] * 3, f"r{i}") for i in range(12)))

    asyncio.run(run())
    cells = service.metrics.histograms["shipyard_adaptive_batch_rows"][("credit", "")]
    over = ROWS_BUCKETS.index(8) + 1
    assert sum(cells[over:-2]) == 0
    assert service.models["credit"].batcher.calls >= 12 * 3 // 7
    calls = service.metrics.histograms["shipyard_model_call_seconds"][("credit", "", "1")]
    assert calls[-1] == service.models["credit"].batcher.calls  # one observation per model call
    assert 0 < calls[-2] < 60


def test_too_many_rows_are_refused_before_queueing(loaded: Any) -> None:
    service = make_service(loaded, max_rows=2)
    with pytest.raises(RequestTooLargeError, match="at most 2"):
        asyncio.run(call(service, [credit_row()] * 3, "big"))


def test_events_hold_every_served_row_and_each_rejection(loaded: Any, tmp_path: Path) -> None:
    events = EventLog(str(tmp_path / "store"), worker="t")
    service = make_service(loaded, events=events)

    async def run() -> list[Any]:
        tasks = [call(service, caller_rows(i), f"r{i}") for i in range(6)]
        tasks.append(call(service, [credit_row(age="x")], "bad"))
        return await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())
    paths = events.flush()
    assert paths
    assert all("/events/credit/date=" in p for p in paths)
    table = pq.ParquetDataset(paths).read().to_pandas()
    served = table[table["status"] == "ok"]
    assert len(served) == sum(len(caller_rows(i)) for i in range(6))
    assert set(served["request_id"]) == {f"r{i}" for i in range(6)}
    first = served[served["request_id"] == "r2"].sort_values("row")
    assert [f["age"] for f in first["features"]] == [r["age"] for r in caller_rows(2)]
    assert {"prediction", "proba_0", "proba_1"} <= set(first["outputs"].iloc[0])
    rejected = table[table["status"] == "rejected"]
    assert rejected["request_id"].tolist() == ["bad"]
    assert "age" in rejected["error"].iloc[0]
    assert not list((tmp_path / "store").rglob(".tmp-*"))


def test_a_model_call_whose_every_request_was_rejected_is_logged(loaded: Any, tmp_path: Path) -> None:
    events = EventLog(str(tmp_path / "store"), worker="t")
    service = make_service(loaded, events=events)
    with pytest.raises(ContractViolationError):
        asyncio.run(call(service, [credit_row(age="x")], "only-bad"))
    paths = events.flush()
    table = pq.ParquetDataset(paths).read()
    assert table["request_id"].to_pylist() == ["only-bad"]
    assert "features" not in table.column_names  # Parquet cannot hold an empty struct


def test_log_sample_zero_logs_nothing_and_a_share_logs_about_that_share(loaded: Any, tmp_path: Path) -> None:
    for sample, low, high in ((0.0, 0, 0), (0.5, 60, 140)):
        events = EventLog(str(tmp_path / f"store-{sample}"), worker="t")
        service = make_service(loaded, events=events, log_sample=sample)

        async def run(service: ModelService = service) -> None:
            await asyncio.gather(*(call(service, [credit_row()], f"r{i}") for i in range(200)))

        asyncio.run(run())
        paths = events.flush()
        logged = pq.ParquetDataset(paths).read().num_rows if paths else 0
        assert low <= logged <= high
