"""The scheduler: start due schedules as child processes and record how each run ends.

`Scheduler.tick` starts every schedule whose latest due time has not been run yet, as a child
process (`python -m shipyard ARGS`), and records each run and how it ended. A schedule runs one
at a time: a due time that finds the previous run still going is recorded as skipped. Due times
missed while no scheduler ran are run once, for the latest of them, not once each. Two
schedulers sharing a database cannot both start one due time (a unique key on it).

A run acts as the principal that added its schedule (`SHIPYARD_RUN_AS`), and learns the time it
was due for (`SHIPYARD_SCHEDULED_FOR`, read into `Settings.scheduled_for`); a schedule added with
an API key stops running when the key is revoked or expires.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime

from shipyard.errors import NotFoundError
from shipyard.scheduling.schedules import Schedule, ScheduleRun, Schedules
from shipyard.security.access import Action
from shipyard.store.metadata import utcnow

__all__ = ["Scheduler"]

log = logging.getLogger("shipyard.scheduler")


@dataclass
class Scheduler:
    """Start due schedules as child processes and record how they end.

    Args:
        schedules: where the schedules live; their context's principal must be allowed to
            schedule (checked here, before any run).
        env: extra environment for the runs (the scheduler's own is passed on).

    Raises:
        PermissionDeniedError: the principal may not schedule.
    """

    schedules: Schedules
    env: dict[str, str] = field(default_factory=dict)
    running: dict[int, subprocess.Popen[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.schedules.context.allow(Action.SCHEDULE)

    def tick(self, now: datetime | None = None) -> list[ScheduleRun]:
        """Reap finished runs, then start every due schedule; returns the runs started or skipped."""
        self.reap()
        now = now or utcnow()
        started = []
        for schedule in self.schedules.list():
            due = schedule.due(now) if schedule.enabled else None
            if due is None:
                continue
            run = self.schedules.claim(schedule.name, due)
            if run is None:
                continue
            if run.status == "running":
                refusal = self._refusal(schedule)
                if refusal is not None:
                    log.warning("schedule %s (due %s) not run: %s", schedule.name, due.isoformat(), refusal)
                    started.append(self.schedules.finish(run.id, exit_code=126, output=refusal))
                    continue
                # The arguments may hold URLs with tokens: the log names the command only.
                log.info(
                    "schedule %s (due %s): shipyard %s", schedule.name, due.isoformat(), _command(schedule)
                )
                env = {**os.environ, **self.env, "SHIPYARD_SCHEDULED_FOR": due.isoformat()}
                if schedule.run_as is not None:
                    env["SHIPYARD_RUN_AS"] = json.dumps(schedule.run_as.to_dict())
                self.running[run.id] = subprocess.Popen(
                    [sys.executable, "-m", "shipyard", *schedule.args],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            started.append(run)
        return started

    def _refusal(self, schedule: Schedule) -> str | None:
        """Why a due run may not start (its key was revoked or expired), or None."""
        who = schedule.run_as
        if who is None or who.via != "api-key":
            return None
        from shipyard.security.keys import KeyVerifier

        try:
            key = KeyVerifier(self.schedules.context.meta).get(who.name)
        except NotFoundError:
            return f"the API key {who.name!r} that added this schedule no longer exists"
        if key.state != "active":
            return (
                f"the API key {who.name!r} that added this schedule is {key.state}; add the schedule "
                "again with a key that is active"
            )
        return None

    def reap(self, *, wait: bool = False) -> list[ScheduleRun]:
        """Record the runs that ended (all of them, with `wait`)."""
        ended = []
        for run_id, process in list(self.running.items()):
            if not wait and process.poll() is None:
                continue
            output, _ = process.communicate()
            del self.running[run_id]
            run = self.schedules.finish(run_id, exit_code=process.returncode, output=output or "")
            log.info(
                "schedule %s (due %s) %s, exit %s",
                run.schedule,
                run.due_at.isoformat(),
                run.status,
                run.exit_code,
            )
            ended.append(run)
        return ended

    def run(self, stop: threading.Event, *, every: float = 30.0) -> None:
        """Tick every `every` seconds until `stop` is set; then wait for the runs started."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # one bad pass must not end the scheduler; the next one retries
                log.exception("the scheduler's pass failed")
            stop.wait(every)
        self.reap(wait=True)


def _command(schedule: Schedule) -> str:
    """The command's words before its first argument (`batch run`), which hold no secrets."""
    words = list(itertools.takewhile(lambda a: re.fullmatch(r"[a-z][a-z-]*", a) is not None, schedule.args))
    return " ".join(words or schedule.args[:1])
