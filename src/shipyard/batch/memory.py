"""An engine over tables held in memory, for tests of job state that need no files.

`MemoryEngine` scores each unit with the step every engine runs (`Scorer.score`) and keeps the
outputs in memory; it can be told to fail at a unit, as an unreadable input would. With it a
test drives a real job in a real metadata store through `run_job` (recorded units, a failure, a
resume that skips what was done, the reject share) without reading or writing a file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Mapping, Sequence
from typing import ClassVar

import numpy as np
import pyarrow as pa

from shipyard.batch.engine import Work
from shipyard.batch.jobs import UnitDone
from shipyard.batch.parts import OUTPUT_FORMATS
from shipyard.batch.sources import Source
from shipyard.core.batch import Batch
from shipyard.errors import InputError

__all__ = ["MemoryEngine"]


class MemoryEngine:
    """Score tables held in memory; keep each unit's scored and rejected rows in memory.

    Args:
        inputs: each input's name (a `memory://` URL) and its units, one table each.

    Attributes:
        failing: (input, unit) pairs that fail as an unreadable input would, once each.
        scored: (input, unit) pairs in the order they were scored (a resume skips the done ones).
        outputs: each scored unit's output rows; `rejects`: its rejected rows, if any.
    """

    formats: ClassVar[tuple[str, ...]] = OUTPUT_FORMATS

    def __init__(self, inputs: Mapping[str, Sequence[pa.Table]]) -> None:
        self.inputs = {url: list(units) for url, units in inputs.items()}
        self.failing: set[tuple[int, int]] = set()
        self.scored: list[tuple[int, int]] = []
        self.outputs: dict[tuple[int, int], pa.Table] = {}
        self.rejects: dict[tuple[int, int], pa.Table] = {}

    def sources(self) -> list[Source]:
        """The inputs as a job's sources (their fingerprint is their rows' count)."""
        found = []
        for url, units in self.inputs.items():
            rows = sum(t.num_rows for t in units)
            fingerprint = hashlib.sha256(f"{url}:{rows}".encode()).hexdigest()[:16]
            found.append(Source(url, "memory", sum(t.nbytes for t in units), fingerprint))
        return found

    def units(self, work: Work) -> Generator[UnitDone, None, None]:
        """Score every unit of the job not done yet, in order.

        Raises:
            InputError: a unit in `failing` was reached (it is taken out of `failing`).
        """
        job = work.job
        for index, source in enumerate(job.sources):
            scorer = work.scorer(index)
            first_row = 0
            for unit, table in enumerate(self.inputs[source.url]):
                start, first_row = first_row, first_row + table.num_rows
                if unit in job.done.get(index, frozenset()):
                    continue
                if (index, unit) in self.failing:
                    self.failing.discard((index, unit))
                    raise InputError(f"cannot read unit {unit} of {source.url}: it was told to fail")
                good, bad = scorer.score(Batch.from_arrow(table), np.arange(start, first_row, dtype=np.int64))
                rejected = 0 if bad is None else bad.num_rows
                self.outputs[index, unit] = scorer.empty() if good is None else good
                if bad is not None:
                    self.rejects[index, unit] = bad
                self.scored.append((index, unit))
                work.on_rows(table.num_rows, rejected)
                yield UnitDone(index, unit, table.num_rows, table.num_rows - rejected, rejected)
