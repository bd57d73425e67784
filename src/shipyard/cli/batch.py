"""`shipyard batch ...`: score files of any size, resumably, with bad rows quarantined."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from shipyard.cli.render import console, emit_json, key_values, table
from shipyard.cli.session import registry
from shipyard.errors import ConfigError

__all__ = ["batch_app"]

batch_app = typer.Typer(
    help="Batch prediction: stream files through a model, resumable, with rejected rows kept aside.",
    no_args_is_help=True,
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


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
    batch_rows: Annotated[int, typer.Option(help="Rows per model call.")] = 32_768,
    unit_rows: Annotated[
        int, typer.Option(help="Rows per resumable unit of a CSV or JSON Lines file (Parquet: row groups).")
    ] = 1_000_000,
    trust_code: Annotated[bool, typer.Option(help="Allow custom Python models.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Score every row of the inputs; rows the contract rejects go to OUTPUT/rejects/ with reasons."""
    from shipyard.batch.run import BatchOptions, start_job

    if engine != "local":
        raise ConfigError(f"--engine {engine!r} is not available yet; use --engine local")
    options = BatchOptions(
        format=format,
        passthrough=tuple(passthrough or ()),
        max_reject_share=max_reject_share,
        batch_rows=batch_rows,
        unit_rows=unit_rows,
    )
    with registry() as reg:
        summary = start_job(
            reg, ref, input, output, options, trust_code=trust_code, on_progress=_reporter(json_out)
        )
    _show_summary(
        summary.job.to_dict() | {"seconds": summary.seconds, "rows_per_second": summary.rate}, json_out
    )


@batch_app.command("resume")
def batch_resume(
    job_id: Annotated[str, typer.Argument(help="The job's id (from 'batch run' or 'batch list').")],
    trust_code: Annotated[bool, typer.Option(help="Allow custom Python models.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Finish a job that was stopped or failed: units already done are skipped, the rest written once."""
    from shipyard.batch.run import resume_job

    with registry() as reg:
        summary = resume_job(reg, job_id, trust_code=trust_code, on_progress=_reporter(json_out))
    _show_summary(
        summary.job.to_dict() | {"seconds": summary.seconds, "rows_per_second": summary.rate}, json_out
    )


@batch_app.command("status")
def batch_status(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    json_out: JsonOpt = False,
) -> None:
    """A job's state, rows scored and rejected, and units done."""
    from shipyard.batch.jobs import Jobs

    with registry() as reg:
        job = Jobs(reg.meta, actor=reg.actor).get(job_id)
    _show_summary(job.to_dict(), json_out)


@batch_app.command("list")
def batch_list(
    limit: Annotated[int, typer.Option(help="The newest jobs to show.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """The newest batch jobs."""
    from shipyard.batch.jobs import Jobs

    with registry() as reg:
        jobs = Jobs(reg.meta, actor=reg.actor).list(limit=limit)
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
            (j.id, j.ref, j.state, j.rows, j.scored, j.rejected, f"{j.created_at:%Y-%m-%d %H:%M:%S}")
            for j in jobs
        ],
    )


def _show_summary(data: dict[str, Any], json_out: bool) -> None:
    if json_out:
        emit_json(data)
        return
    pairs: list[tuple[str, Any]] = [
        ("model", data["ref"] + f" (version {data['version']})"),
        ("state", data["state"] + (f": {data['error']}" if data.get("error") else "")),
        ("inputs", ", ".join(data["inputs"])),
        ("output", data["output"]),
        ("rows", f"{data['rows']:,} = {data['scored']:,} scored + {data['rejected']:,} rejected"),
        ("units done", data["units_done"]),
    ]
    if "rows_per_second" in data:
        pairs.append(("speed", f"{data['rows_per_second']:,.0f} rows/s over {data['seconds']:.1f}s"))
    key_values(f"batch job {data['id']}", pairs)


def _reporter(quiet: bool) -> Any:
    """A rich progress line on a terminal; a plain log line every 10 s otherwise."""
    if quiet:
        return None
    if sys.stderr.isatty():
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True)
        task = bar.add_task("scoring", total=None)
        bar.start()

        def show(progress: Any) -> None:
            bar.update(task, description=_line(progress))

        return show
    last = [time.monotonic()]

    def log(progress: Any) -> None:
        if time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            typer.echo(f"scored {_line(progress)}", err=True)

    return log


def _line(progress: Any) -> str:
    return f"{progress.rows:,} rows ({progress.rejected:,} rejected), {progress.rate:,.0f} rows/s"
