"""Start and resume batch jobs: the Python API behind `shipyard batch`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from shipyard.batch.engine import OUTPUT_FORMATS, Progress, Summary, run_job
from shipyard.batch.jobs import Jobs
from shipyard.batch.sources import discover
from shipyard.core.refs import ModelRef
from shipyard.errors import BatchError
from shipyard.registry.loaded import warm_up
from shipyard.registry.registry import Registry

__all__ = ["BatchOptions", "resume_job", "start_job"]


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    """How a job reads, scores and writes.

    Args:
        format: the output format: 'parquet', 'csv' or 'jsonl'.
        passthrough: input columns copied to the output beside the predictions.
        max_reject_share: the job fails when more than this share of its rows is rejected.
        batch_rows: rows per model call.
        unit_rows: rows per resumable unit of a CSV or JSON Lines file (Parquet: its row groups).
        engine: 'local' (streamed in this process) or 'spark' (Spark executors, `mapInArrow`).
        spark_master: the Spark master for the spark engine (`local[*]`, `spark://host:7077`, ...).
        workers: threads scoring batches side by side (local engine); 0 is one per core.
    """

    format: str = "parquet"
    passthrough: tuple[str, ...] = ()
    max_reject_share: float = 0.01
    batch_rows: int = 16_384
    unit_rows: int = 1_000_000
    engine: str = "local"
    spark_master: str = "local[*]"
    workers: int = 0

    def __post_init__(self) -> None:
        if self.format not in OUTPUT_FORMATS:
            raise BatchError(f"--format is {self.format!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
        if not 0 <= self.max_reject_share <= 1 or math.isnan(self.max_reject_share):
            raise BatchError(f"--max-reject-share is {self.max_reject_share}; expected a share from 0 to 1")
        if self.engine not in ("local", "spark"):
            raise BatchError(f"--engine is {self.engine!r}; expected local or spark")
        if self.engine == "spark" and self.format != "parquet":
            raise BatchError(f"--engine spark writes Parquet; --format {self.format} needs --engine local")
        if self.workers < 0:
            raise BatchError(f"--workers is {self.workers}; expected 0 (one per core) or more")
        for name in ("batch_rows", "unit_rows"):
            if getattr(self, name) < 1:
                raise BatchError(f"--{name.replace('_', '-')} is {getattr(self, name)}; expected 1 or more")


def start_job(
    registry: Registry,
    ref: str | ModelRef,
    inputs: str | Sequence[str],
    output: str,
    options: BatchOptions | None = None,
    *,
    trust_pickle: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> Summary:
    """Score `inputs` with the version `ref` names now, into `output`; the job is recorded first.

    Raises:
        InputError: an input matches no file or is not Parquet, CSV or JSON Lines.
        BatchError: the job failed (it stays resumable with `resume_job`).
    """
    options = options or BatchOptions()
    loaded = registry.load(ref, trust_pickle=trust_pickle)
    sources = discover(inputs)
    warm_up(loaded)  # a model that cannot predict fails here, before a job is recorded
    jobs = Jobs(registry.meta, actor=registry.actor)
    version = loaded.version
    job = jobs.create(
        ref=str(version.ref), model=version.name, version=version.version, sources=sources, output=output,
        options=asdict(options) | {"passthrough": list(options.passthrough)},
    )  # fmt: skip
    store = registry.settings.store_url
    return run_job(jobs, job, loaded, on_progress=on_progress, store_url=store, trust_pickle=trust_pickle)


def resume_job(
    registry: Registry,
    job_id: str,
    *,
    trust_pickle: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> Summary:
    """Finish a stopped or failed job: its finished units are kept, the others written once.

    Raises:
        NotFoundError: there is no such job.
        ConflictError: the job succeeded already, or a live process still runs it.
        BatchError: the job failed again.
    """
    jobs = Jobs(registry.meta, actor=registry.actor)
    job = jobs.claim(job_id)
    loaded = registry.load(ModelRef(job.model, version=job.version), trust_pickle=trust_pickle)
    warm_up(loaded)
    store = registry.settings.store_url
    return run_job(jobs, job, loaded, on_progress=on_progress, store_url=store, trust_pickle=trust_pickle)
