"""The prediction log's events as columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from shipyard.monitoring.event_columns import (
    latency_quantiles,
    rows_per_version,
    struct_batch,
    struct_columns,
    take_rows,
)


def test_rows_per_version_counts_only_rows_served_without_error() -> None:
    events = pa.table({"version": [1, 1, 2, 2, 2], "status": ["ok", "rejected", "ok", "ok", "ok"]})
    assert rows_per_version(events) == {2: 3, 1: 1}
    assert rows_per_version(pa.table({"status": ["ok"]})) == {}


def test_struct_columns_become_arrays_and_a_batch() -> None:
    events = pa.table({"features": [{"x": 1.0, "c": "a"}, {"x": 2.0, "c": "b"}]})
    columns = struct_columns(events, "features", events.column_names)
    assert columns is not None and columns["x"].tolist() == [1.0, 2.0]
    batch = struct_batch(events, "features", events.column_names)
    assert batch is not None and batch.n_rows == 2 and set(batch.names) == {"x", "c"}
    assert struct_batch(events, "outputs", events.column_names) is None
    picked = take_rows(columns, np.array([1]))
    assert picked is not None and picked["c"].tolist() == ["b"]
    assert take_rows(None, np.array([0])) is None


def test_latency_quantiles() -> None:
    assert latency_quantiles(np.array([])) is None
    got = latency_quantiles(np.arange(101, dtype=np.float64))
    assert got == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
