"""Requests written to the prediction log as a server writes them, for monitoring tests."""

from __future__ import annotations

import time

import pandas as pd

from shipyard import Registry
from shipyard.monitoring.events import EventBatch, EventLog

#: The README's example request id: no server ever answered it.
PLACEHOLDER = "649efc5abf3a000000000001"


def log_requests(registry: Registry, ref: str, frame: pd.DataFrame, *, target: str, ago: float = 60) -> None:
    """Log one answered request (ids r0, r1, ...) per row of `frame` for `ref`, `ago` seconds back."""
    loaded = registry.load(ref)
    batch = loaded.validate(frame.drop(columns=[target])).batch
    n = batch.n_rows
    log = EventLog(registry.settings.store_url)
    log.append(
        EventBatch(
            time=time.time() - ago,
            model=loaded.version.name,
            version=loaded.version.version,
            request_ids=[f"r{i}" for i in range(n)],
            rows=[1] * n,
            protocols=["rest"] * n,
            latencies_ms=[4.0] * n,
            statuses=["ok"] * n,
            errors=[None] * n,
            features=batch,
            predictions=loaded.predict_valid(batch),
        )
    )
    log.flush()


def queue_requests(
    log: EventLog, registry: Registry, frame: pd.DataFrame, *, rows_per_request: int = 1
) -> list[str]:
    """Queue `frame`'s rows in `log` as served by credit:1, `rows_per_request` per request, and one
    refused request (`refused-1`); the ids of the answered ones. Nothing is written until `log.flush()`."""
    loaded = registry.load("credit:1")
    batch = loaded.validate(frame.drop(columns=["default"])).batch
    n = batch.n_rows // rows_per_request
    ids = [f"r{i}" for i in range(n)]
    log.append(
        EventBatch(
            time=time.time() - 60,
            model="credit",
            version=1,
            request_ids=[*ids, "refused-1"],
            rows=[rows_per_request] * n + [1],
            protocols=["rest"] * (n + 1),
            latencies_ms=[4.0] * (n + 1),
            statuses=["ok"] * n + ["rejected"],
            errors=[None] * n + ["contract"],
            features=batch,
            predictions=loaded.predict_valid(batch),
        )
    )
    return ids
