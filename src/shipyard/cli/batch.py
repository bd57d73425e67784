"""`shipyard batch ...`: score files of any size, resumably, with bad rows quarantined."""

from __future__ import annotations

import sys
import time
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli.options import JsonOpt, TrustPickleOpt
from shipyard.cli.render import console, emit_json, key_values, table
from shipyard.cli.session import context as open_context
from shipyard.cli.session import registry

if TYPE_CHECKING:
    from shipyard.config import Settings

__all__ = ["batch_app"]

batch_app = typer.Typer(
    help="Batch prediction: stream files through a model, resumable, with rejected rows kept aside.",
    no_args_is_help=True,
)


@batch_app.command("run")
def batch_run(
    ref: Annotated[str, typer.Argument(help="The model: NAME@ALIAS, NAME:VERSION or NAME.")],
    input: Annotated[
        list[str], typer.Option("--input", "-i", help="Files: paths, globs or fsspec URLs; repeatable.")
    ],
    output: Annotated[str, typer.Option("--output", "-o", help="A folder (or fsspec URL) for the parts.")],
    format: Annotated[str, typer.Option(help="parquet, csv or jsonl.")] = "parquet",
    passthrough: Annotated[
        list[str] | None, typer.Option(help="An input column copied to the output; repeatable.")
    ] = None,
    max_reject_share: Annotated[
        float, typer.Option(help="The job fails when more than this share of rows is rejected.")
    ] = 0.01,
    engine: Annotated[str, typer.Option(help="local, or spark (needs the spark extra).")] = "local",
    batch_rows: Annotated[int, typer.Option(help="Rows per model call.")] = 16_384,
    unit_rows: Annotated[
        int, typer.Option(help="Rows per resumable unit of a CSV or JSON Lines file (Parquet: row groups).")
    ] = 1_000_000,
    spark_master: Annotated[
        str,
        typer.Option(help="The Spark master for --engine spark (local[*], spark://host:7077, yarn, ...)."),
    ] = "local[*]",
    workers: Annotated[int, typer.Option(help="Threads scoring batches side by side (0: one per core).")] = 0,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Add each scored row's attributions: shap_<feature> columns (shap_<output>_<feature> "
            "for several outputs), shap_base and shap_additivity_error.",
        ),
    ] = False,
    explain_method: Annotated[
        str, typer.Option(help="With --explain: auto, tree_shap, linear, exact, permutation or lime.")
    ] = "auto",
    overwrite: Annotated[
        bool, typer.Option(help="Remove the parts of an earlier job from OUTPUT first (refused otherwise).")
    ] = False,
    trust_pickle: TrustPickleOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Score every row of the inputs; rows the contract rejects go to OUTPUT/rejects/ with reasons.

    {today} and {yesterday} in --input and --output become dates (YYYY-MM-DD, UTC): of the run's
    due time when the scheduler starts it, else of now.
    """
    from shipyard.batch.run import BatchOptions, dated, start_job

    options = BatchOptions(
        format=format,
        passthrough=tuple(passthrough or ()),
        max_reject_share=max_reject_share,
        batch_rows=batch_rows,
        unit_rows=unit_rows,
        engine=engine,
        spark_master=spark_master,
        workers=workers,
        explain=explain,
        explain_method=explain_method,
    )
    with registry() as reg:
        day = _run_day(reg.settings)
        summary = start_job(
            reg,
            ref,
            [dated(pattern, day) for pattern in input],
            dated(output, day),
            options,
            overwrite=overwrite,
            trust_pickle=trust_pickle,
            on_progress=_reporter(json_out),
        )
    _show_run(summary, json_out)


@batch_app.command("resume")
def batch_resume(
    job_id: Annotated[str, typer.Argument(help="The job's id (from 'batch run' or 'batch list').")],
    trust_pickle: TrustPickleOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Finish a job that was stopped or failed: units already done are skipped, the rest written once."""
    from shipyard.batch.run import resume_job

    with registry() as reg:
        summary = resume_job(reg, job_id, trust_pickle=trust_pickle, on_progress=_reporter(json_out))
    _show_run(summary, json_out)


@batch_app.command("status")
def batch_status(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    json_out: JsonOpt = False,
) -> None:
    """A job's state, rows scored and rejected, and units done."""
    from shipyard.batch.jobs import Jobs

    with open_context() as context:
        job = Jobs(context).get(job_id)
    _show_summary(job.to_dict() | {"process_gone": _process_gone(job)}, json_out)


@batch_app.command("list")
def batch_list(
    limit: Annotated[int, typer.Option(help="The newest jobs to show.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """The newest batch jobs."""
    from shipyard.batch.jobs import Jobs

    with open_context() as context:
        jobs = Jobs(context).list(limit=limit)
    if json_out:
        emit_json([j.to_dict() for j in jobs])
        return
    if not jobs:
        console.print("no batch jobs yet; start one with 'shipyard batch run REF --input ... --output ...'")
        return
    table(
        None,
        ["id", "model", "state", "rows", "scored", "rejected", "started"],
        [
            (
                j.id,
                j.ref,
                "stopped" if _process_gone(j) else j.state,
                j.rows,
                j.scored,
                j.rejected,
                f"{j.created_at:%Y-%m-%d %H:%M:%S}",
            )
            for j in jobs
        ],
    )


def _process_gone(job: Any) -> bool:
    """A job left running by a process on this host that is gone (killed): shown as stopped."""
    import socket

    from shipyard.store.holders import alive

    here = job.holder.rpartition(":")[0] == socket.gethostname()
    return bool(job.state == "running" and here and not alive(job.holder))


def _run_day(settings: Settings) -> date:
    """The day a run is for: its due time's when the scheduler started it (a missed run started
    late still reads its own day's files), else today's, in UTC."""
    return (settings.scheduled_for or datetime.now(UTC)).date()


def _show_run(summary: Any, json_out: bool) -> None:
    """A run's end: the job as it ended, and how fast this run scored."""
    _show_summary(
        summary.job.to_dict() | {"seconds": summary.seconds, "rows_per_second": summary.rate}, json_out
    )


def _show_summary(data: dict[str, Any], json_out: bool) -> None:
    if json_out:
        emit_json(data)
        return
    state = data["state"] + (f": {data['error']}" if data.get("error") else "")
    if data.get("process_gone"):
        resume = f"'shipyard batch resume {data['id']}'"
        state = f"stopped: its process {data['holder']} is gone; {resume} finishes it"
    pairs: list[tuple[str, Any]] = [
        ("model", data["ref"] + f" (version {data['version']})"),
        ("state", state),
        ("inputs", ", ".join(data["inputs"])),
        ("output", data["output"]),
        ("rows", f"{data['rows']:,} = {data['scored']:,} scored + {data['rejected']:,} rejected"),
        ("units done", data["units_done"]),
    ]
    if "rows_per_second" in data:
        pairs.append(("speed", f"{data['rows_per_second']:,.0f} rows/s over {data['seconds']:.1f}s"))
    key_values(f"batch job {data['id']}", pairs)


def _reporter(quiet: bool) -> Any:
    """A progress bar (rows/s, ETA) on a terminal; a plain log line every 10 s otherwise."""
    if quiet:
        return None
    if sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        task = bar.add_task("scoring", total=None)
        bar.start()

        def show(progress: Any) -> None:
            bar.update(task, description=_line(progress), completed=progress.rows, total=progress.total)
            if progress.total is not None and progress.rows >= progress.total:
                bar.stop()

        return show
    last = [time.monotonic()]

    def log(progress: Any) -> None:
        if time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            eta = f", about {progress.eta:,.0f}s left" if progress.eta is not None else ""
            typer.echo(f"scored {_line(progress)}{eta}", err=True)

    return log


def _line(progress: Any) -> str:
    return f"{progress.rows:,} rows ({progress.rejected:,} rejected), {progress.rate:,.0f} rows/s"
