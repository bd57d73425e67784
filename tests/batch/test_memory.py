"""`MemoryEngine`: the engine of tables in memory that tests of job state drive (see test_engine.py).

Here is what the engine itself does: its inputs as a job's sources, each unit scored by the one
step with the input's row numbers, rejected rows kept aside, and a unit told to fail failing once.
"""

from __future__ import annotations

from dataclasses import asdict

import pyarrow as pa
import pytest

from credit_files import rows
from shipyard import Registry
from shipyard.batch.engine import Work
from shipyard.batch.jobs import Job, Jobs, UnitDone
from shipyard.batch.memory import MemoryEngine
from shipyard.batch.run import BatchOptions
from shipyard.errors import InputError
from shipyard.security.context import Context


def _units(count: int, n: int, *, bad: tuple[int, ...] = (), seed: int = 1) -> list[pa.Table]:
    """`count` tables of `n` credit applications; rows in `bad` (of the whole input) are not numbers."""
    frame = rows(count * n, bad=bad, seed=seed)
    whole = pa.Table.from_pandas(frame.astype({"income": str}) if bad else frame, preserve_index=False)
    return [whole.slice(i * n, n) for i in range(count)]


def _job(context: Context, engine: MemoryEngine) -> Job:
    return Jobs(context).create(
        ref="credit:1", model="credit", version=1, sources=engine.sources(), output="memory://out",
        options=asdict(BatchOptions()) | {"passthrough": []},
    )  # fmt: skip


def test_each_input_is_a_source_whose_fingerprint_follows_its_rows() -> None:
    engine = MemoryEngine({"memory://a": _units(2, 10), "memory://b": _units(1, 30, seed=2)})
    a, b = engine.sources()
    assert (a.url, b.url) == ("memory://a", "memory://b")
    assert a.fmt == b.fmt == "memory"
    assert a.fingerprint != b.fingerprint
    assert MemoryEngine({"memory://a": _units(1, 20)}).sources()[0].fingerprint == a.fingerprint
    assert MemoryEngine({"memory://a": _units(1, 21)}).sources()[0].fingerprint != a.fingerprint


def test_units_are_scored_in_order_with_the_inputs_row_numbers_and_rejects_kept_aside(
    registry: Registry, context: Context
) -> None:
    engine = MemoryEngine({"memory://day": _units(3, 40, bad=(45,))})
    progress: list[tuple[int, int]] = []
    work = Work(
        _job(context, engine), registry.load("credit:1"), on_rows=lambda r, x: progress.append((r, x))
    )
    done = list(engine.units(work))
    assert done == [UnitDone(0, 0, 40, 40, 0), UnitDone(0, 1, 40, 39, 1), UnitDone(0, 2, 40, 40, 0)]
    assert engine.scored == [(0, 0), (0, 1), (0, 2)]
    assert progress == [(40, 0), (40, 1), (40, 0)]
    assert engine.outputs[0, 2]["row"].to_pylist() == list(range(80, 120))
    assert list(engine.rejects) == [(0, 1)] and engine.rejects[0, 1]["row"].to_pylist() == [45]


def test_a_unit_told_to_fail_fails_once_as_an_unreadable_input_would(
    registry: Registry, context: Context
) -> None:
    engine = MemoryEngine({"memory://day": _units(2, 10)})
    engine.failing = {(0, 1)}
    work = Work(_job(context, engine), registry.load("credit:1"))
    units = engine.units(work)
    assert next(units) == UnitDone(0, 0, 10, 10, 0)
    with pytest.raises(InputError, match="cannot read unit 1 of memory://day: it was told to fail"):
        next(units)
    assert engine.failing == set()
    assert [u.unit for u in engine.units(work)] == [0, 1]  # nothing was recorded done: both again
