"""Start and resume batch jobs: the Python API behind `shipyard batch`."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta

from shipyard.attribution.base import METHODS
from shipyard.batch.engine import Progress, Summary, engine_named, run_job
from shipyard.batch.explained import ready
from shipyard.batch.jobs import Jobs
from shipyard.batch.parts import OUTPUT_FORMATS
from shipyard.batch.sources import discover
from shipyard.core.refs import ModelRef
from shipyard.errors import BatchError
from shipyard.registry.loaded import warm_up
from shipyard.registry.registry import Registry
from shipyard.security.context import Context
from shipyard.store.objects import open_url

__all__ = ["BatchOptions", "dated", "resume_job", "start_job"]


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    """How a job reads, scores and writes.

    Args:
        format: the output format: 'parquet', 'csv' or 'jsonl'.
        passthrough: input columns copied to the output beside the predictions.
        max_reject_share: the job fails when more than this share of its rows is rejected.
        batch_rows: rows per model call.
        unit_rows: rows per resumable unit of a CSV or JSON Lines file (Parquet: its row groups).
        engine: an engine of `batch.engine.ENGINES`: 'local' (streamed in this process) or
            'spark' (Spark executors, `mapInArrow`).
        spark_master: the Spark master for the spark engine (`local[*]`, `spark://host:7077`, ...).
        workers: threads scoring batches side by side (local engine); 0 is one per core.
        explain: add each scored row's attributions to the output (`shap_<feature>` columns, the
            base value and the additivity error; see `batch.explained`); rejected rows get none.
        explain_method: the explanation method (`shipyard.attribution.base.METHODS`); 'auto'
            picks the exact one the model allows.
    """

    format: str = "parquet"
    passthrough: tuple[str, ...] = ()
    max_reject_share: float = 0.01
    batch_rows: int = 16_384
    unit_rows: int = 1_000_000
    engine: str = "local"
    spark_master: str = "local[*]"
    workers: int = 0
    explain: bool = False
    explain_method: str = "auto"

    def __post_init__(self) -> None:
        if self.format not in OUTPUT_FORMATS:
            raise BatchError(f"--format is {self.format!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
        if not 0 <= self.max_reject_share <= 1 or math.isnan(self.max_reject_share):
            raise BatchError(f"--max-reject-share is {self.max_reject_share}; expected a share from 0 to 1")
        formats = engine_named(self.engine).formats
        if self.format not in formats:
            writes = " or ".join(_FORMAT_NAMES[f] for f in formats)
            raise BatchError(
                f"--engine {self.engine} writes {writes}; --format {self.format} needs --engine local"
            )
        if self.explain_method not in METHODS:
            raise BatchError(
                f"--explain-method is {self.explain_method!r}; expected one of {', '.join(METHODS)}"
            )
        if self.workers < 0:
            raise BatchError(f"--workers is {self.workers}; expected 0 (one per core) or more")
        for name in ("batch_rows", "unit_rows"):
            if getattr(self, name) < 1:
                raise BatchError(f"--{name.replace('_', '-')} is {getattr(self, name)}; expected 1 or more")


def start_job(
    registry: Registry,
    ref: str | ModelRef,
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str,
    options: BatchOptions | None = None,
    *,
    overwrite: bool = False,
    trust_pickle: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> Summary:
    """Score `inputs` with the version `ref` names now, into `output`; the job is recorded first.

    Args:
        output: a folder (a local path, kept as an absolute one, or an fsspec URL); it must hold
            no parts of another job, unless `overwrite` removes them first.

    Raises:
        InputError: an input matches no file or is not Parquet, CSV or JSON Lines.
        BatchError: the output is a file or holds another job's parts, or the job failed (it
            stays resumable with `resume_job`).
        UnsupportedExplanationError: `options.explain` asks for a method the model cannot have.
    """
    options = options or BatchOptions()
    sources = discover(inputs)  # before the model's load: a missing file is told at once
    output = _output_folder(output, overwrite=overwrite)
    loaded = registry.load(ref, trust_pickle=trust_pickle)
    warm_up(loaded)  # a model that cannot predict fails here, before a job is recorded
    if options.explain:  # and one that cannot be explained so
        ready(loaded, options.explain_method)
    jobs = Jobs(_context(registry))
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
    jobs = Jobs(_context(registry))
    job = jobs.claim(job_id)
    loaded = registry.load(ModelRef(job.model, version=job.version), trust_pickle=trust_pickle)
    warm_up(loaded)
    store = registry.settings.store_url
    return run_job(jobs, job, loaded, on_progress=on_progress, store_url=store, trust_pickle=trust_pickle)


def dated(text: str, day: date) -> str:
    """`text` with `{today}` and `{yesterday}` replaced by `day` and the day before (YYYY-MM-DD),
    for commands that run every day (`shipyard schedule`)."""
    yesterday = day - timedelta(days=1)
    return text.replace("{today}", day.isoformat()).replace("{yesterday}", yesterday.isoformat())


_PARTS = ("part-", "spark-", "rejects", ".part-")
_FORMAT_NAMES = {"parquet": "Parquet", "csv": "CSV", "jsonl": "JSON Lines"}


def _context(registry: Registry) -> Context:
    """The registry's store and principal, as the context the job store checks them in."""
    return Context(registry.settings, registry.meta, registry.principal, registry.actor)


def _output_folder(output: str, *, overwrite: bool) -> str:
    """The output folder, absolute when local (a resume from elsewhere writes to the same place),
    checked to hold no parts of another job; with `overwrite`, those parts are removed first."""
    if "://" not in output:
        output = os.path.abspath(os.path.expanduser(output))
    fs, root = open_url(output)
    if fs.isfile(root):
        raise BatchError(f"--output {output} is a file; expected a folder (new or empty) for the parts")
    if not fs.isdir(root):
        return output
    found = [p for p in fs.ls(root, detail=False) if p.rstrip("/").rsplit("/", 1)[-1].startswith(_PARTS)]
    if found and not overwrite:
        raise BatchError(
            f"--output {output} already holds {len(found)} part(s) of another job "
            f"(e.g. {found[0].rsplit('/', 1)[-1]}); expected a new or empty folder. Choose another "
            "folder (a schedule can name one per day with {today}), or pass --overwrite to remove them"
        )
    for path in found:
        fs.rm(path, recursive=True)
    return output
