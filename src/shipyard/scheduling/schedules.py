"""Schedules: a `shipyard` command run on a cron expression, stored in the metadata store.

Each schedule records the principal that added it; its runs act as that principal
(`SHIPYARD_RUN_AS`), not as the scheduler: a deployer's schedule can do what that deployer can,
and no more. Options that run code or call out (a retraining command, webhooks, pickles, extra
skops types) need the admin role to schedule, since the scheduler's machine would run them.
`Schedules` checks each of its actions against its context's principal, so the Python API is
guarded as the CLI is. The runs themselves are started by `scheduling.scheduler.Scheduler`.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from shipyard.errors import BatchError, ConflictError, NotFoundError
from shipyard.security import audit
from shipyard.security.access import Action, Principal
from shipyard.security.context import Context, HasContext, context_of
from shipyard.store.holders import alive, this_process
from shipyard.store.metadata import as_utc, utcnow
from shipyard.store.schema import schedule_runs, schedules

__all__ = [
    "COMMAND_OPTIONS",
    "SCHEDULABLE",
    "Schedule",
    "ScheduleRun",
    "Schedules",
    "check_cron",
    "runs_commands",
]

#: The commands a schedule may run (a schedule of `scheduler` or `serve` makes no sense).
SCHEDULABLE = ("batch", "monitor", "evaluate", "gates", "predict")
_OUTPUT_TAIL = 4000
#: Options whose runs execute code or reach other hosts from the scheduler's machine.
COMMAND_OPTIONS = ("--on-drift", "--alert", "--trust-pickle", "--trust-type")


@dataclass(frozen=True)
class Schedule:
    """A command and when it runs."""

    name: str
    cron: str
    args: tuple[str, ...]
    enabled: bool
    last_due_at: datetime | None
    created_at: datetime
    actor: str
    run_as: Principal | None = None  # None: added before schedules kept it; runs as the scheduler

    def due(self, now: datetime) -> datetime | None:
        """The latest due time at or before `now` not yet run, or None."""
        from croniter import croniter

        latest: datetime = croniter(self.cron, now.astimezone(UTC)).get_prev(datetime)
        if latest <= (self.last_due_at or self.created_at):
            return None
        return latest

    def next_after(self, moment: datetime) -> datetime:
        """The first due time after `moment`."""
        from croniter import croniter

        following: datetime = croniter(self.cron, moment.astimezone(UTC)).get_next(datetime)
        return following

    def to_dict(self) -> dict[str, Any]:
        """The schedule as JSON-safe data."""
        return {
            "name": self.name,
            "cron": self.cron,
            "command": ["shipyard", *self.args],
            "enabled": self.enabled,
            "last_due_at": self.last_due_at.isoformat() if self.last_due_at else None,
            "next_due_at": self.next_after(max(utcnow(), self.last_due_at or self.created_at)).isoformat(),
            "created_at": self.created_at.isoformat(),
            "actor": self.actor,
            "runs_as": str(self.run_as) if self.run_as else None,
        }


@dataclass(frozen=True)
class ScheduleRun:
    """One run of a schedule: when it was due, how it ended, the end of its output."""

    id: int
    schedule: str
    due_at: datetime
    started_at: datetime
    finished_at: datetime | None
    status: str  # running | succeeded | failed | skipped
    exit_code: int | None
    output: str

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON-safe data."""
        return {
            "id": self.id,
            "schedule": self.schedule,
            "due_at": self.due_at.isoformat(),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "status": self.status,
            "exit_code": self.exit_code,
            "output": self.output,
        }


def check_cron(cron: str) -> str:
    """The cron expression, checked.

    Raises:
        BatchError: it is not five cron fields croniter understands.
    """
    from croniter import croniter

    fields = cron.split()
    if len(fields) != 5 or not croniter.is_valid(cron):
        bad = ""
        for i, (value, (name, span)) in enumerate(zip(fields, _CRON_FIELDS, strict=False)):
            probe = ["*"] * 5
            probe[i] = value
            if not croniter.is_valid(" ".join(probe)):
                bad = f" (field {i + 1}, the {name}, is {value!r}; expected {span})"
                break
        raise BatchError(
            f"--cron {cron!r} is not a cron expression{bad}; expected five fields, minute hour day "
            "month weekday, e.g. '0 2 * * *' (02:00 UTC every day)"
        )
    return cron


_CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of the month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("weekday", "0-6 or sun-sat"),
)


class Schedules:
    """Add, list, remove schedules, claim and finish their runs, and read them.

    Every method checks its action against the context's principal first (reading needs
    `Action.READ`; adding, removing, claiming and finishing need `Action.SCHEDULE`, and a command
    that runs code or calls out `Action.RUN_COMMANDS` too); a refusal is written to the audit log.

    Args:
        context: the metadata store, and who acts: the schedules it adds run as its principal,
            and its actor is written to the record; or anything holding one, such as a `Registry`.
    """

    def __init__(self, context: Context | HasContext) -> None:
        self.context = context_of(context)

    def add(self, name: str, cron: str, args: Sequence[str]) -> Schedule:
        """A new schedule of `shipyard ARGS`; its first run is at the first due time from now.

        Raises:
            BatchError: the name, the cron expression or the command is not acceptable.
            ConflictError: a schedule of that name exists.
            PermissionDeniedError: the principal may not schedule, or not a command that runs
                code or calls out.
        """
        from shipyard.core.refs import check_name

        args = tuple(args)
        self.context.allow(Action.SCHEDULE)
        if runs_commands(args):  # the scheduler's machine would run what the schedule says
            self.context.allow(Action.RUN_COMMANDS)
        check_name(name)
        check_cron(cron)
        if not args or args[0] not in SCHEDULABLE:
            raise BatchError(
                f"a schedule runs a shipyard command; got {' '.join(args) or 'nothing'!r}. Expected one of "
                f"{', '.join(SCHEDULABLE)} after '--', e.g. '-- batch run fraud@production --input ... "
                "--output ...'"
            )

        def change(conn: Connection) -> None:
            if conn.execute(select(schedules.c.name).where(schedules.c.name == name)).first():
                raise ConflictError(f"a schedule named {name!r} exists; remove it first or pick another name")
            conn.execute(
                insert(schedules).values(
                    name=name, cron=cron, args=list(args), enabled=True, last_due_at=None,
                    created_at=utcnow(), actor=self.context.actor,
                    run_as=self.context.principal.to_dict(),
                )
            )  # fmt: skip
            detail = {"cron": cron, "args": list(args)}
            audit.append(
                conn, "schedule-add", actor=self.context.actor, target=f"schedule:{name}", detail=detail
            )

        self.context.meta.write(change)
        return self._get(name)

    def get(self, name: str) -> Schedule:
        """The schedule `name`.

        Raises:
            NotFoundError: there is none.
            PermissionDeniedError: the principal may not read.
        """
        self.context.allow(Action.READ)
        return self._get(name)

    def _get(self, name: str) -> Schedule:
        with self.context.meta.read() as conn:
            row = conn.execute(select(schedules).where(schedules.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no schedule named {name!r}; 'shipyard schedule list' shows them")
        return _schedule(row)

    def list(self) -> list[Schedule]:
        """Every schedule, by name.

        Raises:
            PermissionDeniedError: the principal may not read.
        """
        self.context.allow(Action.READ)
        with self.context.meta.read() as conn:
            return [_schedule(r) for r in conn.execute(select(schedules).order_by(schedules.c.name)).all()]

    def remove(self, name: str) -> None:
        """Remove a schedule and its history.

        Raises:
            NotFoundError: there is none.
            PermissionDeniedError: the principal may not schedule.
        """
        self.context.allow(Action.SCHEDULE)

        def change(conn: Connection) -> None:
            if conn.execute(delete(schedules).where(schedules.c.name == name)).rowcount == 0:
                raise NotFoundError(f"no schedule named {name!r}; 'shipyard schedule list' shows them")
            audit.append(conn, "schedule-remove", actor=self.context.actor, target=f"schedule:{name}")

        self.context.meta.write(change)

    def runs(self, name: str, *, limit: int = 50) -> builtins.list[ScheduleRun]:
        """The schedule's runs, newest first.

        Raises:
            PermissionDeniedError: the principal may not read.
        """
        self.context.allow(Action.READ)
        with self.context.meta.read() as conn:
            rows = conn.execute(
                select(schedule_runs)
                .where(schedule_runs.c.schedule == name)
                .order_by(schedule_runs.c.due_at.desc())
                .limit(limit)
            ).all()
        return [_run(r) for r in rows]

    def claim(self, name: str, due_at: datetime) -> ScheduleRun | None:
        """Record the run of `name` due at `due_at` as started, or as skipped when the previous one
        still runs; None when another scheduler took this due time already.

        Raises:
            PermissionDeniedError: the principal may not schedule.
        """
        self.context.allow(Action.SCHEDULE)

        def change(conn: Connection) -> int | None:
            row = conn.execute(select(schedules).where(schedules.c.name == name)).first()
            if row is None or (row.last_due_at is not None and as_utc(row.last_due_at) >= due_at):
                return None
            conn.execute(update(schedules).where(schedules.c.name == name).values(last_due_at=due_at))
            running = conn.execute(
                select(schedule_runs)
                .where(schedule_runs.c.schedule == name)
                .where(schedule_runs.c.status == "running")
            ).all()
            busy = False
            for run in running:
                if alive(run.holder):
                    busy = True
                else:  # its scheduler died with it: say so, so it no longer holds the schedule
                    conn.execute(
                        update(schedule_runs)
                        .where(schedule_runs.c.id == run.id)
                        .values(
                            status="failed",
                            finished_at=utcnow(),
                            output="the scheduler stopped during the run",
                        )
                    )
            now = utcnow()
            return int(
                conn.execute(
                    insert(schedule_runs)
                    .values(
                        schedule=name, due_at=due_at, started_at=now, holder=this_process(),
                        status="skipped" if busy else "running", exit_code=None,
                        finished_at=now if busy else None,
                        output="the previous run was still running" if busy else "",
                    )
                    .returning(schedule_runs.c.id)
                ).scalar_one()
            )  # fmt: skip

        run_id = self.context.meta.write(change)
        return None if run_id is None else self._run(run_id)

    def finish(self, run_id: int, *, exit_code: int, output: str) -> ScheduleRun:
        """Record how a run ended.

        Raises:
            PermissionDeniedError: the principal may not schedule.
        """
        self.context.allow(Action.SCHEDULE)
        self.context.meta.write(
            lambda conn: conn.execute(
                update(schedule_runs)
                .where(schedule_runs.c.id == run_id)
                .values(
                    status="succeeded" if exit_code == 0 else "failed",
                    exit_code=exit_code,
                    finished_at=utcnow(),
                    output=output[-_OUTPUT_TAIL:],
                )
            )
        )
        return self._run(run_id)

    def _run(self, run_id: int) -> ScheduleRun:
        with self.context.meta.read() as conn:
            return _run(conn.execute(select(schedule_runs).where(schedule_runs.c.id == run_id)).one())


def _schedule(row: Any) -> Schedule:
    return Schedule(
        name=row.name,
        cron=row.cron,
        args=tuple(row.args),
        enabled=bool(row.enabled),
        last_due_at=as_utc(row.last_due_at) if row.last_due_at is not None else None,
        created_at=as_utc(row.created_at),
        actor=row.actor,
        run_as=Principal.from_dict(row.run_as) if row.run_as else None,
    )


def runs_commands(args: Sequence[str]) -> bool:
    """Whether a scheduled command has options that run code or call out (admin only)."""
    return any(a.split("=", 1)[0] in COMMAND_OPTIONS for a in args)


def _run(row: Any) -> ScheduleRun:
    return ScheduleRun(
        id=int(row.id),
        schedule=row.schedule,
        due_at=as_utc(row.due_at),
        started_at=as_utc(row.started_at),
        finished_at=as_utc(row.finished_at) if row.finished_at is not None else None,
        status=row.status,
        exit_code=row.exit_code,
        output=row.output or "",
    )
