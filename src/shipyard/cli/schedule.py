"""`shipyard schedule ...` and `shipyard scheduler`: shipyard commands run on cron times."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli.options import JsonOpt
from shipyard.cli.render import console, emit_json, table
from shipyard.cli.session import context as open_context
from shipyard.errors import ConfigError

__all__ = ["schedule_app", "scheduler"]

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

    with open_context() as context:  # its principal may need the admin role for what the command runs
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

    with open_context() as context:
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

    with open_context() as context:
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

    with open_context() as context:
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
        str | None,
        typer.Option(help="The container image with shipyard installed; 'shipyard:RELEASE' by default."),
    ] = None,
    secret: Annotated[
        str | None, typer.Option(help="A Secret holding SHIPYARD_DB_URL and SHIPYARD_STORE_URL.")
    ] = None,
) -> None:
    """Print the schedule as a Kubernetes CronJob (YAML) that runs the same command."""
    import yaml

    from shipyard.packaging.k8s_spec import default_image
    from shipyard.packaging.kubernetes import kubernetes_cronjob
    from shipyard.scheduling.schedules import Schedules

    if not k8s:
        raise ConfigError("say what to export as: --k8s (a Kubernetes CronJob)")
    with open_context() as context:
        schedule = Schedules(context).get(name)
    if not secret:  # a pod has no home of ours: without the store's URLs it starts an empty registry
        typer.echo(
            "warning: no --secret: the CronJob's pod gets no SHIPYARD_DB_URL or SHIPYARD_STORE_URL and "
            "would run against an empty registry in its own home; pass --secret NAME, a Secret holding "
            "both",
            err=True,
        )
    typer.echo(
        yaml.safe_dump(
            kubernetes_cronjob(schedule, image=image or default_image(), secret=secret), sort_keys=False
        ),
        nl=False,
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
    with open_context() as context:
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
