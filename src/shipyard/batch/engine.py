"""The local batch engine: stream units of rows through the one predict path into output parts.

For each unit of each input (see `sources`): its batches are validated by the version's contract
and the rows that pass are predicted (`LoadedModel.validate` / `predict_valid`, the calls every
path makes); predictions go to `<output>/part-SSSSS-UUUUUU.<fmt>` and rejected rows, with their
reasons, to `<output>/rejects/part-SSSSS-UUUUUU.<fmt>`. Each part is written under a temporary name
and renamed when the unit is complete, then the unit is recorded as done. Reading runs ahead on
a thread, batches are scored side by side on a pool of threads (one per core, each giving the
model one thread) and handed back in input order, and writing runs on its own thread, so reading,
predicting and writing overlap; memory is bounded by a few batches.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from fsspec.core import url_to_fs

from shipyard.batch.jobs import Job, Jobs, UnitDone
from shipyard.batch.scoring import Scorer
from shipyard.batch.sources import Source, read_unit
from shipyard.core.batch import PROBA_PREFIX, Batch
from shipyard.errors import BatchError, InputError, ShipyardError, UnresumableJobError
from shipyard.registry.loaded import LoadedModel

__all__ = ["OUTPUT_FORMATS", "Progress", "Summary", "run_job"]

OUTPUT_FORMATS = ("parquet", "csv", "jsonl")
_END = object()


@dataclass
class Progress:
    """Rows done so far, for a progress bar or log lines (called after every batch)."""

    rows: int = 0
    scored: int = 0
    rejected: int = 0
    total: int | None = None  # rows this run will read, when known (Parquet inputs)
    started: float = field(default_factory=time.perf_counter)

    @property
    def rate(self) -> float:
        """Rows per second so far."""
        return self.rows / max(time.perf_counter() - self.started, 1e-9)

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far, when the total is known."""
        if self.total is None or self.rows == 0:
            return None
        return max(self.total - self.rows, 0) / max(self.rate, 1e-9)


@dataclass(frozen=True)
class Summary:
    """How a run ended: rows in = scored + rejected."""

    job: Job
    seconds: float
    rows_this_run: int

    @property
    def rate(self) -> float:
        """Rows per second of this run."""
        return self.rows_this_run / max(self.seconds, 1e-9)


def run_job(
    jobs: Jobs,
    job: Job,
    loaded: LoadedModel,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    store_url: str = "",
    trust_pickle: bool = False,
) -> Summary:
    """Score every unit of `job` not yet done, then end it as succeeded or failed.

    With the job's option `engine: spark`, Spark scores it (on `spark_master`); its executors load
    the version from the artifact store at `store_url`.

    The job fails (its finished parts stay) when an input cannot be read, the model fails, or
    more than `max_reject_share` of the rows were rejected.

    Raises:
        BatchError: the job failed; the message says why, and the job records it.
    """
    options = job.options
    started = time.perf_counter()
    pending: _Written | None = None
    progress = Progress()
    threads = _Scoring(int(options.get("workers") or 0))
    try:
        fs, root = _output_root(job)
        progress.total = _rows_left(job)
        if options.get("engine") == "spark":
            from shipyard.batch.spark import spark_units

            master = str(options.get("spark_master") or "local[*]")
            progress.rows, _ = spark_units(
                jobs, job, loaded, master=master, store_url=store_url, trust_pickle=trust_pickle
            )
        for index, source in enumerate(job.sources if options.get("engine") != "spark" else ()):
            _check_unchanged(source)
            skip = set(job.done.get(index, frozenset()))
            offsets = _row_offsets(source, int(options["unit_rows"]))
            units = read_unit(
                source,
                unit_rows=int(options["unit_rows"]),
                batch_rows=int(options["batch_rows"]),
                contract=loaded.contract,
                skip=skip,
            )
            for unit, batches in _ahead(units):
                scoring = _Unit(fs, root, job, loaded, index, unit, offsets(unit), threads)
                done = scoring.score(batches, progress, on_progress)
                # The previous unit's parts finished writing meanwhile: rename and record them.
                if pending is not None:
                    jobs.unit_done(job.id, pending.commit())
                pending = done
        if pending is not None:
            jobs.unit_done(job.id, pending.commit())
            pending = None
    except ShipyardError as exc:
        if pending is not None:
            pending.abandon()
        jobs.finish(job.id, "failed", str(exc))
        if isinstance(exc, UnresumableJobError):
            raise UnresumableJobError(f"batch job {job.id} failed: {exc}") from exc
        raise BatchError(
            f"batch job {job.id} failed: {exc}; fix it and run 'shipyard batch resume {job.id}'"
        ) from exc
    except BaseException as exc:  # Ctrl-C or a crash: leave the job resumable, say why
        if pending is not None:
            pending.abandon()
        why = f"unexpected {type(exc).__name__}: {exc}" if isinstance(exc, Exception) else "interrupted"
        jobs.finish(job.id, "failed", why)
        raise
    finally:
        threads.close()
    ended = _end(jobs, job)
    return Summary(ended, time.perf_counter() - started, progress.rows)


def _output_root(job: Job) -> tuple[Any, str]:
    """The output's filesystem and folder, made if new."""
    fs, root = url_to_fs(job.output)
    try:
        fs.makedirs(root, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"cannot make the output folder {job.output}: {exc}") from None
    return fs, root


def _end(jobs: Jobs, job: Job) -> Job:
    """End a job whose every unit is done: failed past the reject share, else succeeded."""
    ended = jobs.get(job.id)
    share = ended.rejected / ended.rows if ended.rows else 0.0
    limit = float(job.options["max_reject_share"])
    if share > limit:
        why = (
            f"{ended.rejected} of {ended.rows} rows ({share:.2%}) were rejected, more than "
            f"--max-reject-share {limit:.2%}; their reasons are under {job.output.rstrip('/')}/rejects/"
        )
        jobs.finish(job.id, "failed", why)
        raise BatchError(f"batch job {job.id} failed: {why}")
    return jobs.finish(job.id, "succeeded")


def _rows_left(job: Job) -> int | None:
    """The rows of the units not done yet, when every input is Parquet (its footer says)."""
    if any(source.fmt != "parquet" for source in job.sources):
        return None

    left = 0
    for index, source in enumerate(job.sources):
        meta = _parquet_metadata(source)
        done = job.done.get(index, frozenset())
        left += sum(meta.row_group(i).num_rows for i in range(meta.num_row_groups) if i not in done)
    return left


def _parquet_metadata(source: Source) -> Any:
    """A Parquet input's footer: its row groups and their sizes.

    Raises:
        InputError: the file is not Parquet (the message names it).
    """
    import pyarrow.parquet as pq

    fs, path = url_to_fs(source.url)
    try:
        with fs.open(path, "rb") as handle:
            return pq.ParquetFile(handle).metadata
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"cannot read {source.url} as parquet: {exc}") from None


def _check_unchanged(source: Source) -> None:
    from shipyard.batch.sources import discover

    now = discover(source.url)[0]
    if now.fingerprint != source.fingerprint:
        raise UnresumableJobError(
            f"input {source.url} changed since the job started (size or modification time); "
            "a resumed job would mix two versions of it. Start a new job"
        )


def _row_offsets(source: Source, unit_rows: int) -> Callable[[int], int]:
    """The file row of each unit's first row: row-group sizes for Parquet, fixed units otherwise."""
    if source.fmt != "parquet":
        return lambda unit: unit * unit_rows
    meta = _parquet_metadata(source)
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return lambda unit: int(starts[unit])


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

        self.workers = workers or len(os.sched_getaffinity(0))
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


class _Writer:
    """Write one part's tables on a thread, under a temporary name; `commit` renames it into place."""

    def __init__(self, fs: Any, path: str, fmt: str) -> None:
        self.fs, self.path, self.fmt = fs, path, fmt
        self.tmp = f"{path.rsplit('/', 1)[0]}/.{path.rsplit('/', 1)[1]}.tmp"
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.rows = 0
        self.finished = False
        self.thread = threading.Thread(target=self._run, name="shipyard-batch-write", daemon=True)
        self.thread.start()

    def write(self, table: pa.Table) -> None:
        if self.error is not None:
            raise self.error
        self.rows += table.num_rows
        self.queue.put(table)

    def finish(self) -> None:
        """No more tables: the thread writes what it holds and closes the file."""
        self.finished = True
        self.queue.put(_END)

    def commit(self) -> None:
        """Wait for the file to be complete, then rename it into place."""
        self.thread.join()
        if self.error is not None:
            raise self.error
        self.fs.mv(self.tmp, self.path)

    def abandon(self) -> None:
        if not self.finished:
            self.finish()
        self.thread.join(timeout=30)
        if self.fs.exists(self.tmp):
            self.fs.rm(self.tmp)

    def _run(self) -> None:
        writer: Any = None
        try:
            with _create(self.fs, self.tmp) as handle:
                while (table := self.queue.get()) is not _END:
                    writer = writer or _open_writer(handle, self.fmt, table.schema)
                    writer.write_table(table)
                if writer is not None:
                    writer.close()
        except BaseException as exc:
            self.error = exc
            while self.queue.get() is not _END:  # let the producer finish its puts
                pass


def _create(fs: Any, path: str) -> Any:
    """A new file: Arrow's own for a local path (its writes skip Python and the GIL), else fsspec's."""
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        return pa.OSFile(path, "wb")
    return fs.open(path, "wb")


class _JsonLinesWriter:
    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def write_table(self, table: pa.Table) -> None:
        import orjson

        option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
        self.handle.write(b"".join(orjson.dumps(r, option=option) for r in table.to_pylist()))

    def close(self) -> None:
        return None


def _open_writer(handle: Any, fmt: str, schema: pa.Schema) -> Any:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetWriter(handle, schema, compression="snappy", **_parquet_encodings(schema))
    if fmt == "csv":
        import pyarrow.csv as pcsv

        return pcsv.CSVWriter(handle, schema)
    return _JsonLinesWriter(handle)


def _parquet_encodings(schema: pa.Schema) -> dict[str, Any]:
    """Dictionaries for the columns that repeat (version, labels, text), none for measurements;
    min/max statistics for every column but the class probabilities.

    Probabilities and row numbers almost never repeat: trying a dictionary on them cost four
    times the CPU of writing them plain and made the file larger. Row numbers count up by one,
    which delta encoding stores in almost nothing. A page of probabilities spans nearly all of
    [0, 1], so their statistics would let no reader skip anything, and computing them was 40%
    of the CPU of writing a part.
    """
    repeating = [f.name for f in schema if f.name != "row" and not pa.types.is_floating(f.type)]
    encodings = {"row": "DELTA_BINARY_PACKED"} if "row" in schema.names else {}
    with_statistics = [n for n in schema.names if not n.startswith(PROBA_PREFIX)]
    return {"use_dictionary": repeating, "column_encoding": encodings, "write_statistics": with_statistics}


@dataclass(frozen=True)
class _Written:
    """A scored unit whose parts are still being written."""

    done: UnitDone
    writers: list[_Writer]

    def commit(self) -> UnitDone:
        """Rename the parts into place (outputs last: a part means its rejects are there too)."""
        for writer in reversed(self.writers):
            writer.commit()
        return self.done

    def abandon(self) -> None:
        for writer in self.writers:
            writer.abandon()


@dataclass(frozen=True)
class _Unit:
    """One unit being scored: where its parts go and what its rows carry."""

    fs: Any
    root: str
    job: Job
    loaded: LoadedModel
    source: int
    unit: int
    first_row: int
    threads: _Scoring

    @property
    def name(self) -> str:
        return f"part-{self.source:05d}-{self.unit:06d}.{self.job.options['format']}"

    @property
    def scorer(self) -> Scorer:
        return Scorer(
            self.loaded,
            input_url=self.job.sources[self.source].url,
            passthrough=tuple(self.job.options.get("passthrough", ())),
            name_input=len(self.job.sources) > 1,
        )

    def score(
        self, batches: Iterator[Batch], progress: Progress, on_progress: Callable[[Progress], None] | None
    ) -> _Written:
        """Validate and predict every batch; its parts finish writing on their threads."""
        fmt = str(self.job.options["format"])
        out = _Writer(self.fs, f"{self.root}/{self.name}", fmt)
        rejects: _Writer | None = None
        rows = scored = rejected = 0
        try:
            for batch, good, bad in _in_order(self.threads, self.scorer, batches, self.first_row):
                if good is not None:
                    out.write(good)
                if bad is not None:
                    if rejects is None:
                        self.fs.makedirs(f"{self.root}/rejects", exist_ok=True)
                        rejects = _Writer(self.fs, f"{self.root}/rejects/{self.name}", fmt)
                    rejects.write(bad)
                n_bad = 0 if bad is None else bad.num_rows
                rows += batch.n_rows
                rejected += n_bad
                scored += batch.n_rows - n_bad
                progress.rows += batch.n_rows
                progress.scored += batch.n_rows - n_bad
                progress.rejected += n_bad
                if on_progress is not None:
                    on_progress(progress)
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
