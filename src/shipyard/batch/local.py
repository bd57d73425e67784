"""The local engine: stream units of rows through the one predict path into output parts.

For each unit of each input (see `sources`): its batches are validated by the version's contract
and the rows that pass are predicted (`Scorer.score`, the step every engine runs); predictions go
to `<output>/part-SSSSS-UUUUUU.<fmt>` and rejected rows, with their reasons, to
`<output>/rejects/part-SSSSS-UUUUUU.<fmt>` (see `parts`). A unit is handed back as done once its
parts are in place. Reading runs ahead on a thread, batches are scored side by side on a pool of
threads (one per core, each giving the model one thread) and handed back in input order, and
writing runs on its own thread, so reading, predicting and writing overlap; memory is bounded by
a few batches.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from shipyard.batch.engine import Work
from shipyard.batch.jobs import UnitDone
from shipyard.batch.parts import OUTPUT_FORMATS, PartWriter, output_root
from shipyard.batch.scoring import Scorer
from shipyard.batch.sources import read_unit
from shipyard.core.batch import Batch

__all__ = ["LocalEngine", "cores"]

_END = object()


class LocalEngine:
    """Score a job in this process: read, score on every core, write parts, one unit at a time.

    The job's options say how: `unit_rows` and `batch_rows`, `format`, `passthrough`, and
    `workers` (threads scoring side by side; 0 is one per core).
    """

    formats: ClassVar[tuple[str, ...]] = OUTPUT_FORMATS

    def units(self, work: Work) -> Generator[UnitDone, None, None]:
        """Score every unit of the job not done yet; each is handed back once its parts are in
        place. Closed early (or failing), it removes the parts it had not put in place.

        Raises:
            InputError: an input cannot be read.
            UnresumableJobError: an input changed since the job started, or a pass-through
                column is missing.
            BatchError: the output folder cannot be made.
        """
        job, options = work.job, work.job.options
        unit_rows, batch_rows = int(options["unit_rows"]), int(options["batch_rows"])
        threads = _Scoring(int(options.get("workers") or 0))
        unfinished: list[_Written] = []  # scored units whose parts are still being written
        try:
            fs, root = output_root(job)
            for index, source in enumerate(job.sources):
                source.check_unchanged()
                skip = set(job.done.get(index, frozenset()))
                offsets = source.row_offsets(unit_rows)
                units = read_unit(
                    source,
                    unit_rows=unit_rows,
                    batch_rows=batch_rows,
                    contract=work.loaded.contract,
                    skip=skip,
                )
                for unit, batches in _ahead(units):
                    scoring = _Unit(fs, root, work, index, unit, offsets(unit), threads)
                    unfinished.append(scoring.score(batches, work.on_rows))
                    # The previous unit's parts finished writing meanwhile: put them in place.
                    if len(unfinished) > 1:
                        yield _commit(unfinished)
            if unfinished:
                yield _commit(unfinished)
        except BaseException:
            for written in unfinished:
                written.abandon()
            raise
        finally:
            threads.close()


def _commit(unfinished: list[_Written]) -> UnitDone:
    """Put the oldest unit's parts in place; it is no longer unfinished once they are."""
    done = unfinished[0].commit()
    unfinished.pop(0)
    return done


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one, else all)."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return len(affinity(0))
    return os.cpu_count() or 1


def _ahead(units: Iterator[tuple[int, Iterator[Batch]]]) -> Iterator[tuple[int, Iterator[Batch]]]:
    """Read on a thread, up to eight batches ahead, so reading and predicting overlap.

    Eight batches are a row group of 131,072 rows at the default batch size: the next row
    group is decoded while those are scored, so the scoring threads do not wait at its start.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=8)
    stop = threading.Event()

    def read() -> None:
        try:
            for unit, batches in units:
                for batch in batches:
                    while not stop.is_set():
                        try:
                            ready.put((unit, batch), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                ready.put((unit, _END))
            ready.put((None, _END))
        except BaseException as exc:  # handed to the consumer, which raises it
            ready.put((None, exc))

    reader = threading.Thread(target=read, name="shipyard-batch-read", daemon=True)
    reader.start()
    try:
        pending: tuple[int, Any] | None = None
        while True:
            unit, item = pending or ready.get()
            pending = None
            if isinstance(item, BaseException):
                raise item
            if unit is None:
                return

            def batches(first: Any = item, current: int = unit) -> Iterator[Batch]:
                nonlocal pending
                item = first
                while item is not _END:
                    yield item
                    got_unit, item = ready.get()
                    if isinstance(item, BaseException):
                        raise item
                    if got_unit != current:  # cannot happen: a unit ends with _END
                        pending = (got_unit, item)
                        return

            if item is _END:  # an empty unit
                yield unit, iter(())
            else:
                yield unit, batches()
    finally:
        stop.set()


class _Scoring:
    """Threads that score batches side by side, one per core unless the job says otherwise.

    Each gives its model one OpenMP thread, and BLAS has one thread while the job runs:
    batches in parallel keep every core busy, where one batch at a time on all the model's
    threads left them waiting on each other at every tree or block whenever the reader or
    the writer took a core (on two cores, the benchmark's job went from 0.67x to about 0.84x
    of the in-memory floor). The model is called from several threads at once: `workers=1`
    is for a model that cannot take that.
    """

    def __init__(self, workers: int) -> None:
        from threadpoolctl import threadpool_limits

        self.workers = workers or cores()
        self.pool = ThreadPoolExecutor(
            self.workers, thread_name_prefix="shipyard-batch-score", initializer=_one_openmp_thread
        )
        # Process-wide, both restored by `close`.
        self._blas = threadpool_limits(1, user_api="blas")
        self._arrow_pool = _streaming_memory_pool()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._blas.restore_original_limits()
        if self._arrow_pool is not None:
            pa.set_memory_pool(self._arrow_pool)


def _streaming_memory_pool() -> pa.MemoryPool | None:
    """Use jemalloc for Arrow's buffers while the job runs, when Arrow has it and the user has
    not chosen a pool (`ARROW_DEFAULT_MEMORY_POOL`); the pool in use before is returned.

    The reader allocates every batch and other threads free it. Arrow's default, mimalloc,
    kept taking fresh memory for the next batches, which the kernel zeroes first: 5.6% of the
    benchmark job's CPU went to zeroing pages, 2.5% with jemalloc, and the job ran 2 to 3%
    faster. Buffers remember their pool, so the switch is safe at any time.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL") or "jemalloc" not in pa.supported_memory_backends():
        return None
    previous = pa.default_memory_pool()
    if previous.backend_name == "jemalloc":  # another job in this process switched it
        return None
    pa.set_memory_pool(pa.jemalloc_memory_pool())
    return previous


def _one_openmp_thread() -> None:
    """OpenMP's thread count is per calling thread: this limits the scoring thread only."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="openmp")


def _in_order(
    scoring: _Scoring, scorer: Scorer, batches: Iterator[Batch], first_row: int
) -> Iterator[tuple[Batch, pa.Table | None, pa.Table | None]]:
    """Score the batches on the pool, one more than its threads ahead, and hand back the
    results in input order."""
    window: deque[tuple[Batch, Future[tuple[pa.Table | None, pa.Table | None]]]] = deque()
    start = first_row
    try:
        for batch in batches:
            row = np.arange(start, start + batch.n_rows, dtype=np.int64)
            start += batch.n_rows
            window.append((batch, scoring.pool.submit(scorer.score, batch, row)))
            if len(window) > scoring.workers:
                done, future = window.popleft()
                yield (done, *future.result())
        while window:
            done, future = window.popleft()
            yield (done, *future.result())
    finally:
        for _, future in window:
            future.cancel()


@dataclass(frozen=True)
class _Written:
    """A scored unit whose parts are still being written."""

    done: UnitDone
    writers: list[PartWriter]

    def commit(self) -> UnitDone:
        """Rename the parts into place (outputs last: a part means its rejects are there too)."""
        for writer in reversed(self.writers):
            writer.commit()
        return self.done

    def abandon(self) -> None:
        """Remove the parts not yet in place."""
        for writer in self.writers:
            writer.abandon()


@dataclass(frozen=True)
class _Unit:
    """One unit being scored: where its parts go and what its rows carry."""

    fs: Any
    root: str
    work: Work
    source: int
    unit: int
    first_row: int
    threads: _Scoring

    @property
    def name(self) -> str:
        return f"part-{self.source:05d}-{self.unit:06d}.{self.work.job.options['format']}"

    @property
    def scorer(self) -> Scorer:
        return self.work.scorer(self.source)

    def score(self, batches: Iterator[Batch], on_rows: Callable[[int, int], None]) -> _Written:
        """Validate and predict every batch; its parts finish writing on their threads."""
        fmt = str(self.work.job.options["format"])
        out = PartWriter(self.fs, f"{self.root}/{self.name}", fmt)
        rejects: PartWriter | None = None
        rows = scored = rejected = 0
        try:
            for batch, good, bad in _in_order(self.threads, self.scorer, batches, self.first_row):
                if good is not None:
                    out.write(good)
                if bad is not None:
                    if rejects is None:
                        self.fs.makedirs(f"{self.root}/rejects", exist_ok=True)
                        rejects = PartWriter(self.fs, f"{self.root}/rejects/{self.name}", fmt)
                    rejects.write(bad)
                n_bad = 0 if bad is None else bad.num_rows
                rows += batch.n_rows
                rejected += n_bad
                scored += batch.n_rows - n_bad
                on_rows(batch.n_rows, n_bad)
            if out.rows == 0:  # every row rejected (or none): an empty part keeps the numbering whole
                out.write(self.scorer.empty())
        except BaseException:
            out.abandon()
            if rejects is not None:
                rejects.abandon()
            raise
        writers = [out] if rejects is None else [out, rejects]
        for writer in writers:
            writer.finish()
        return _Written(UnitDone(self.source, self.unit, rows, scored, rejected), writers)
