"""`shipyard batch ...`: score files of any size, resumably, with bad rows quarantined."""

from __future__ import annotations

import sys
import time
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli.options import JsonOpt, TrustPickleOpt
from shipyard.cli.render import console, emit_json, key_values, table
from shipyard.cli.session import registry
from shipyard.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.security.context import Context

__all__ = ["batch_app", "schedule_app", "scheduler"]

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

    with _context() as context:
        job = Jobs(context).get(job_id)
    _show_summary(job.to_dict() | {"process_gone": _process_gone(job)}, json_out)


@batch_app.command("list")
def batch_list(
    limit: Annotated[int, typer.Option(help="The newest jobs to show.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """The newest batch jobs."""
    from shipyard.batch.jobs import Jobs

    with _context() as context:
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


def _context() -> Context:
    """The metadata store and who acts, from the environment; use with `with`."""
    from shipyard.security.context import Context

    return Context.open()


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


# -- schedules ---------------------------------------------------------------------------------
schedule_app = typer.Typer(
    help="Run shipyard commands on a cron schedule ('shipyard scheduler' runs them).", no_args_is_help=True
)


@schedule_app.command("add", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def schedule_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The schedule's name.")],
    cron: Annotated[str, typer.Option(help="Five cron fields in UTC, e.g. '0 2 * * *'.")],
    json_out: JsonOpt = False,
) -> None:
    """Add a schedule: NAME --cron '0 2 * * *' -- batch run REF --input ... --output ..."""
    from shipyard.scheduling.schedules import Schedules

    with _context() as context:  # its principal may need the admin role for what the command runs
        added = Schedules(context).add(name, cron, ctx.args)
    if json_out:
        emit_json(added.to_dict())
        return
    console.print(
        f"schedule [bold]{added.name}[/] runs 'shipyard {' '.join(added.args)}' at '{added.cron}' (UTC); "
        f"next at {added.to_dict()['next_due_at']}; run 'shipyard scheduler' to carry it out",
        highlight=False,
    )


@schedule_app.command("list")
def schedule_list(json_out: JsonOpt = False) -> None:
    """Every schedule, with its last and next due time."""
    from shipyard.scheduling.schedules import Schedules

    with _context() as context:
        found = [s.to_dict() for s in Schedules(context).list()]
    if json_out:
        emit_json(found)
        return
    if not found:
        console.print("no schedules; add one with 'shipyard schedule add NAME --cron ... -- batch run ...'")
        return
    table(
        None,
        ["name", "cron (UTC)", "command", "last due", "next due"],
        [
            (s["name"], s["cron"], " ".join(s["command"]), s["last_due_at"] or "-", s["next_due_at"])
            for s in found
        ],
    )


@schedule_app.command("remove")
def schedule_remove(name: Annotated[str, typer.Argument(help="The schedule's name.")]) -> None:
    """Remove a schedule and its history of runs."""
    from shipyard.scheduling.schedules import Schedules

    with _context() as context:
        Schedules(context).remove(name)
    console.print(f"removed schedule {name}")


@schedule_app.command("history")
def schedule_history(
    name: Annotated[str, typer.Argument(help="The schedule's name.")],
    limit: Annotated[int, typer.Option(help="The newest runs to show.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """A schedule's runs, newest first: when due, how they ended."""
    from shipyard.scheduling.schedules import Schedules

    with _context() as context:
        schedules = Schedules(context)
        schedules.get(name)
        runs = schedules.runs(name, limit=limit)
    if json_out:
        emit_json([r.to_dict() for r in runs])
        return
    table(
        f"runs of {name}",
        ["due", "started", "status", "exit", "output (end)"],
        [
            (f"{r.due_at:%Y-%m-%d %H:%M}", f"{r.started_at:%H:%M:%S}", r.status, r.exit_code, r.output[-120:])
            for r in runs
        ],
    )


@schedule_app.command("export")
def schedule_export(
    name: Annotated[str, typer.Argument(help="The schedule's name.")],
    k8s: Annotated[
        bool, typer.Option("--k8s", help="Print a Kubernetes CronJob (the only export so far).")
    ] = False,
    image: Annotated[
        str, typer.Option(help="The container image with shipyard installed.")
    ] = "shipyard:latest",
    secret: Annotated[
        str | None, typer.Option(help="A Secret holding SHIPYARD_DB_URL and SHIPYARD_STORE_URL.")
    ] = None,
) -> None:
    """Print the schedule as a Kubernetes CronJob (YAML) that runs the same command."""
    import yaml

    from shipyard.packaging.kubernetes import kubernetes_cronjob
    from shipyard.scheduling.schedules import Schedules

    if not k8s:
        raise ConfigError("say what to export as: --k8s (a Kubernetes CronJob)")
    with _context() as context:
        schedule = Schedules(context).get(name)
    if not secret:  # a pod has no home of ours: without the store's URLs it starts an empty registry
        typer.echo(
            "warning: no --secret: the CronJob's pod gets no SHIPYARD_DB_URL or SHIPYARD_STORE_URL and "
            "would run against an empty registry in its own home; pass --secret NAME, a Secret holding "
            "both",
            err=True,
        )
    typer.echo(
        yaml.safe_dump(kubernetes_cronjob(schedule, image=image, secret=secret), sort_keys=False), nl=False
    )


def scheduler(
    every: Annotated[float, typer.Option(help="Seconds between checks of the schedules.")] = 30.0,
    once: Annotated[bool, typer.Option("--once", help="Start what is due, wait for it, and exit.")] = False,
) -> None:
    """Run due schedules until SIGTERM: one run at a time per schedule; missed runs run once."""
    import logging
    import signal
    import threading

    from shipyard.scheduling.scheduler import Scheduler
    from shipyard.scheduling.schedules import Schedules

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("shipyard.scheduler").setLevel(logging.INFO)  # each run started and ended
    with _context() as context:
        runner = Scheduler(Schedules(context))  # the context's principal must be allowed to schedule
        if once:
            runner.tick()
            for run in runner.reap(wait=True):
                console.print(f"{run.schedule}: {run.status} (exit {run.exit_code})", highlight=False)
            return
        stop = threading.Event()
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, lambda *_: stop.set())
        console.print(f"scheduler running, checking every {every:g}s; Ctrl-C stops it")
        runner.run(stop, every=every)
