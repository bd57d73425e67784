"""Requests written to the prediction log as a server writes them, for monitoring tests."""

from __future__ import annotations

import time

import pandas as pd

from shipyard import Registry
from shipyard.monitoring.events import EventBatch, EventLog


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
