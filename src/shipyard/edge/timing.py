"""Latency of a model call: one row, and a batch, as medians of a few repeats.

Quantization and pruning report what they changed in time as well as in size; both time the
same way, so that their ratios compare. The numbers are only as quiet as the machine: the
benchmark (`benchmarks/edge.py`) is where they are meant to be read.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Latency", "measure"]


@dataclass(frozen=True)
class Latency:
    """How long a model takes.

    Args:
        single_row_ms: the median time of one call on one row, in milliseconds.
        batch_rows_per_s: rows per second of one call on `batch_rows` rows (median call).
        batch_rows: the rows of the batch.
        repeats: the calls each median is taken over.
    """

    single_row_ms: float
    batch_rows_per_s: float
    batch_rows: int
    repeats: int

    def ratio(self, other: Latency) -> dict[str, float]:
        """`other` against this one: the single-row time ratio (below 1 is faster) and the batch
        speed-up (above 1 is faster)."""
        return {
            "single_row": other.single_row_ms / self.single_row_ms,
            "batch_speedup": other.batch_rows_per_s / self.batch_rows_per_s,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe."""
        return {
            "single_row_ms": self.single_row_ms,
            "batch_rows_per_s": self.batch_rows_per_s,
            "batch_rows": self.batch_rows,
            "repeats": self.repeats,
        }


def measure(
    call: Callable[[Any], object], one: Any, batch: Any, *, batch_rows: int, repeats: int = 20
) -> Latency:
    """Time `call(one)` and `call(batch)`, `repeats` times each after one warm-up call.

    Args:
        call: runs the model on its argument.
        one: the model's input for one row.
        batch: its input for `batch_rows` rows.
        batch_rows: how many rows `batch` holds.
        repeats: calls per median (at least 1).
    """
    repeats = max(1, repeats)
    single = _median_seconds(call, one, repeats)
    whole = _median_seconds(call, batch, repeats)
    return Latency(single * 1e3, batch_rows / whole if whole > 0 else float("inf"), batch_rows, repeats)


def _median_seconds(call: Callable[[Any], object], argument: Any, repeats: int) -> float:
    call(argument)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(argument)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
