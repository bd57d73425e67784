"""`monitor watch`: check a model on a schedule, alert on what holds, and trigger retraining.

Each check builds a `MonitorReport` of the last window, evaluates the rules, records the episodes
(`AlertBook`), and acts on the alerts that opened or resolved: the log always, webhooks when
given, and the retraining command when an alert opened. When the command registers a new version
of the model, `on_new_version` decides what happens to it; the command line passes one that runs
the gates and moves an alias only when they pass, so a retrained model is never promoted unchecked.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.refs import ModelRef
from shipyard.errors import MonitorConfigError, ShipyardError
from shipyard.monitoring.alerts import Alert, AlertBook, Firing, Rule, Webhook
from shipyard.monitoring.monitor import MonitorReport, monitor_report
from shipyard.monitoring.thresholds import DriftSettings

if TYPE_CHECKING:
    from shipyard.registry.records import ModelVersion
    from shipyard.registry.registry import Registry

__all__ = ["Check", "Watcher"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Check:
    """What one check found and did.

    Args:
        report: the monitoring report of the window.
        firings: every condition that holds.
        opened: alerts that opened at this check (notified).
        resolved: alerts that stopped holding at this check (notified).
        retrain: what the retraining command did, when it ran.
    """

    report: MonitorReport
    firings: tuple[Firing, ...]
    opened: tuple[Alert, ...]
    resolved: tuple[Alert, ...]
    retrain: dict[str, Any] | None = None
    notified: dict[str, int] = field(default_factory=dict)


class Watcher:
    """Checks one model's recent traffic against rules and acts on the alerts.

    Args:
        registry: the registry (and metadata store) of the model.
        ref: the model (`fraud`, `fraud@production`).
        window: how much recent traffic each check looks at.
        rules: the alert rules.
        webhooks: where alerts are posted.
        command: the retraining command, run when an alert opens.
        command_timeout: seconds the command may run.
        on_new_version: called with a version the command registered; returns what was done.
        settings: drift thresholds.
    """

    def __init__(
        self,
        registry: Registry,
        ref: str,
        *,
        window: timedelta,
        rules: Sequence[Rule],
        webhooks: Sequence[Webhook] = (),
        command: str | None = None,
        command_timeout: float = 3600.0,
        on_new_version: Callable[[ModelVersion], dict[str, Any]] | None = None,
        settings: DriftSettings | None = None,
    ) -> None:
        if not rules:
            raise MonitorConfigError("monitor watch needs at least one alert rule")
        self.registry = registry
        self.ref = ModelRef.parse(ref)
        self.window = window
        self.rules = list(rules)
        self.webhooks = list(webhooks)
        self.command = shlex.split(command) if command else None
        if command is not None and not self.command:
            raise MonitorConfigError("the retraining command is empty")
        self.command_timeout = command_timeout
        self.on_new_version = on_new_version
        self.settings = settings
        self.book = AlertBook(registry)

    def check(self) -> Check:
        """Run one check now."""
        report = monitor_report(self.registry, self.ref, window=self.window, settings=self.settings)
        firings = [f for rule in self.rules for f in rule.check(report)]
        opened, resolved = self.book.observe(self.ref.name, firings, self.rules)
        notified: dict[str, int] = {}
        for alert, status in [(a, "firing") for a in opened] + [(a, "resolved") for a in resolved]:
            (log.warning if status == "firing" else log.info)(
                "alert %s %s on %s: %s", alert.rule, status, report.ref, alert.detail.get("message", "")
            )
            body = _payload(alert, status, report)
            for hook in self.webhooks:
                notified[hook.url] = notified.get(hook.url, 0) + hook.send(body)
        retrain = self._retrain(report, opened) if opened and self.command else None
        return Check(
            report=report,
            firings=tuple(firings),
            opened=tuple(opened),
            resolved=tuple(resolved),
            retrain=retrain,
            notified=notified,
        )

    def run(
        self,
        every: timedelta,
        *,
        iterations: int | None = None,
        on_check: Callable[[Check], None] | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Check every `every` until stopped (or `iterations` checks); returns how many checks failed.

        A failed check is logged and the watch goes on: an expected error (a `ShipyardError`,
        such as an unreadable log) as one line naming the cause, anything else with its traceback.
        """
        stop = stop or threading.Event()
        done = failed = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                result = self.check()
                if on_check is not None:
                    on_check(result)
            except ShipyardError as exc:
                failed += 1
                log.error("monitoring check of %s failed: %s", self.ref, exc)
            except Exception:  # one bad check (a database hiccup) must not end the watch
                failed += 1
                log.exception("monitoring check of %s failed; trying again at the next one", self.ref)
            done += 1
            if iterations is not None and done >= iterations:
                return failed
            stop.wait(max(0.0, every.total_seconds() - (time.monotonic() - started)))
        return failed

    def _retrain(self, report: MonitorReport, opened: Sequence[Alert]) -> dict[str, Any]:
        assert self.command is not None
        name = self.ref.name
        before = self.registry.get_model(name).latest_version
        with tempfile.TemporaryDirectory(prefix="shipyard-retrain-") as folder:
            report_path = Path(folder) / "report.json"
            report_path.write_text(json.dumps(report.to_dict()))
            env = {
                **os.environ,
                "SHIPYARD_MODEL": name,
                "SHIPYARD_VERSION": str(report.version),
                "SHIPYARD_ALERTS": json.dumps([a.to_dict() for a in opened]),
                "SHIPYARD_REPORT": str(report_path),
            }
            started = time.perf_counter()
            try:
                done = subprocess.run(  # the user's own command, split without a shell
                    self.command,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=self.command_timeout,
                    check=False,
                )
            except FileNotFoundError:
                log.error("retraining command %s was not found", self.command[0])
                return {"command": self.command, "error": f"{self.command[0]!r} was not found"}
            except subprocess.TimeoutExpired:
                log.error("retraining command ran past %ss and was stopped", self.command_timeout)
                return {"command": self.command, "error": f"ran past {self.command_timeout}s"}
        result: dict[str, Any] = {
            "command": self.command,
            "exit_code": done.returncode,
            "seconds": round(time.perf_counter() - started, 3),
            "output": done.stdout[-4000:],
            "stderr": done.stderr[-4000:],
        }
        if done.returncode != 0:
            log.error("retraining command exited with %d: %s", done.returncode, done.stderr[-500:])
            return result
        after = self.registry.get_model(name).latest_version
        if after is None or after == before:
            result["new_version"] = None
            return result
        version = self.registry.get(ModelRef(name, version=after))
        result["new_version"] = after
        if self.on_new_version is not None:
            try:
                result["promotion"] = self.on_new_version(version)
            except ShipyardError as exc:  # e.g. the evaluation data no longer fits: say so, promote nothing
                log.error("gates of %s could not be checked: %s", version.ref, exc)
                result["promotion"] = {"error": str(exc), "promoted": False}
        return result


def _payload(alert: Alert, status: str, report: MonitorReport) -> dict[str, Any]:
    return {
        "status": status,
        "alert": alert.to_dict(),
        "model": report.name,
        "version": report.version,
        "window": {"since": report.since.isoformat(), "until": report.until.isoformat()},
        "summary": {
            "requests": report.requests,
            "rows": report.rows,
            "dataset_drift": report.drift.dataset_drift if report.drift else None,
            "drifted_features": report.drift.drifted_features if report.drift else [],
        },
    }
