"""Batch engines as a plug-in, and a job run on one: its units recorded, its end decided.

An `Engine` has one method: score the units of a job that are not done yet, handing each back
(`UnitDone`) once its output is in place. `run_job` records each unit as it comes, and ends the
job: failed when an input cannot be read, the model fails, or more than `max_reject_share` of the
rows were rejected; succeeded otherwise. Engines are found by the name a job's options give
(`--engine`) in `ENGINES`; a new engine (Apache Beam, ...) is one class and one line there.

The engines:
    local    `batch.local.LocalEngine`: streamed in this process, on every core.
    spark    `batch.spark.SparkEngine`: Spark executors on any Spark master.
    (tests)  `batch.memory.MemoryEngine`: tables held in memory, for tests of job state.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Protocol

from shipyard.batch.jobs import Job, Jobs, UnitDone
from shipyard.batch.scoring import Scorer
from shipyard.batch.sources import rows_left
from shipyard.errors import BatchError, ShipyardError, UnresumableJobError
from shipyard.registry.loaded import LoadedModel

__all__ = ["ENGINES", "Engine", "Progress", "Summary", "Work", "engine_named", "run_job"]

#: Each engine's name (`--engine NAME`) and its class, imported on first use.
ENGINES: Mapping[str, str] = MappingProxyType(
    {
        "local": "shipyard.batch.local:LocalEngine",
        "spark": "shipyard.batch.spark:SparkEngine",
    }
)


@dataclass(frozen=True)
class Work:
    """What an engine is handed: the job, the version, and where its executors find it.

    Args:
        job: the job, with its inputs, output, options and the units done already.
        loaded: the version, loaded and warmed up in this process.
        store_url: the artifact store, for executors on other machines to load the version from.
        trust_pickle: whether the version may be a pickle (executors load it the same way).
        on_rows: called with (rows, rejected rows) as batches are scored, for progress.
    """

    job: Job
    loaded: LoadedModel
    store_url: str = ""
    trust_pickle: bool = False
    on_rows: Callable[[int, int], None] = field(default=lambda rows, rejected: None)

    def scorer(self, source: int) -> Scorer:
        """The scoring step for the rows of input `source`: the job's pass-through columns, the
        input named in every output row when the job has several, and the attributions when the
        job explains (a job stored before the option existed does not)."""
        options = self.job.options
        return Scorer(
            self.loaded,
            input_url=self.job.sources[source].url,
            passthrough=tuple(options.get("passthrough", ())),
            name_input=len(self.job.sources) > 1,
            explain=str(options.get("explain_method") or "auto") if options.get("explain") else None,
        )


class Engine(Protocol):
    """How a batch job's rows are scored: the one step (`batch.scoring.Scorer`, which calls
    `LoadedModel.score`) on some engine.

    Attributes:
        formats: the output formats the engine writes (`--format`).
    """

    formats: ClassVar[tuple[str, ...]]

    def units(self, work: Work) -> Generator[UnitDone, None, None]:
        """Score every unit of `work.job` not done yet, handing each back once its output is in
        place; closed early (or failing), remove any output not yet in place.

        Raises:
            ShipyardError: an input cannot be read, or the model failed (the job fails; a
                `UnresumableJobError` when a resume cannot help).
        """
        ...


def engine_named(name: str) -> Engine:
    """The engine `ENGINES` names `name`.

    Raises:
        BatchError: there is no engine of that name.
    """
    where = ENGINES.get(name)
    if where is None:
        names = list(ENGINES)
        expected = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
        raise BatchError(f"--engine is {name!r}; expected {expected}")
    module, _, attribute = where.partition(":")
    engine: Engine = getattr(importlib.import_module(module), attribute)()
    return engine


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
    engine: Engine | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    store_url: str = "",
    trust_pickle: bool = False,
) -> Summary:
    """Score every unit of `job` not yet done, then end it as succeeded or failed.

    Args:
        engine: the engine; by default the one the job's option `engine` names. Executors on
            other machines (Spark's) load the version from the artifact store at `store_url`.

    The job fails (its finished parts stay) when an input cannot be read, the model fails, or
    more than `max_reject_share` of the rows were rejected.

    Raises:
        BatchError: the job failed; the message says why, and the job records it.
        UnresumableJobError: the job failed in a way a resume cannot mend.
    """
    started = time.perf_counter()
    progress = Progress()

    def on_rows(rows: int, rejected: int) -> None:
        progress.rows += rows
        progress.scored += rows - rejected
        progress.rejected += rejected
        if on_progress is not None:
            on_progress(progress)

    rows = 0
    try:
        engine = engine or engine_named(str(job.options.get("engine") or "local"))
        progress.total = rows_left(job.sources, job.done)
        units = engine.units(Work(job, loaded, store_url, trust_pickle, on_rows))
        try:
            for done in units:
                jobs.unit_done(job, done)
                rows += done.rows
        finally:
            units.close()  # an engine stopped early removes what it had not put in place
    except ShipyardError as exc:
        jobs.finish(job, "failed", str(exc))
        if isinstance(exc, UnresumableJobError):
            raise UnresumableJobError(f"batch job {job.id} failed: {exc}") from exc
        raise BatchError(
            f"batch job {job.id} failed: {exc}; fix it and run 'shipyard batch resume {job.id}'"
        ) from exc
    except BaseException as exc:  # Ctrl-C or a crash: leave the job resumable, say why
        why = f"unexpected {type(exc).__name__}: {exc}" if isinstance(exc, Exception) else "interrupted"
        jobs.finish(job, "failed", why)
        raise
    ended = _end(jobs, job)
    return Summary(ended, time.perf_counter() - started, rows)


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
        jobs.finish(job, "failed", why)
        raise BatchError(f"batch job {job.id} failed: {why}")
    return jobs.finish(job, "succeeded")
