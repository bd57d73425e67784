"""The prediction log's events as columns: rows per version, feature and output structs, latency."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shipyard.core.batch import Array, Batch

__all__ = ["latency_quantiles", "rows_per_version", "struct_batch", "struct_columns", "take_rows"]


def rows_per_version(events: pa.Table) -> dict[int, int]:
    """Rows served without error per version of the model, from the events' `version` column."""
    if events.num_rows == 0 or "version" not in events.column_names:
        return {}
    frame = pd.DataFrame(
        {
            "version": events["version"].to_numpy(),
            "ok": pc.equal(events["status"], "ok").to_numpy(zero_copy_only=False),
        }
    )
    counts = frame[frame["ok"]]["version"].value_counts()
    return {int(k): int(v) for k, v in zip(counts.index.tolist(), counts.tolist(), strict=True)}


def struct_batch(events: pa.Table, name: str, columns: list[str]) -> Batch | None:
    """The struct column `name` of the events (features) as a batch; None when it is absent."""
    got = struct_columns(events, name, columns)
    if got is None:
        return None
    return Batch.from_columns(got) if got else Batch({}, events.num_rows)


def struct_columns(events: pa.Table, name: str, columns: list[str]) -> dict[str, Array] | None:
    """The struct column `name` of the events (outputs) as arrays by field; None when it is absent."""
    if name not in columns:
        return None
    struct = events[name].combine_chunks()
    fields = struct.type
    return {
        fields.field(i).name: struct.field(i).to_numpy(zero_copy_only=False) for i in range(fields.num_fields)
    }


def latency_quantiles(latency: Array) -> dict[str, float] | None:
    """p50, p95 and p99 of the latencies, or None without any."""
    if not len(latency):
        return None
    return dict(zip(("p50", "p95", "p99"), np.percentile(latency, [50, 95, 99]).tolist(), strict=True))


def take_rows(columns: Mapping[str, Array] | None, rows: Array) -> dict[str, Array] | None:
    """The given rows of each column, or None for no columns."""
    if columns is None:
        return None
    return {k: v[rows] for k, v in columns.items()}
