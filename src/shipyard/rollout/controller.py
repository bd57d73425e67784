"""The rollout controller: analyses each running rollout's step and moves it on, back, or not at all.

Exactly one controller acts at a time across every replica, by the lease `rollout-controller` in
the metadata store; the others stand by and take over within a lease's length if it dies. All of
a rollout's state is in the store (its step and when the step started), so a controller that
starts, or takes over, carries on where the last one stopped.

Each tick, for every progressing rollout:
- canary: the step's window of the prediction log (and the labels that arrived) is analysed;
  a failed rule rolls back at once; a pass moves to the next step once the step has lasted its
  interval; too few requests waits (noted once per step in the history).
- blue/green, preview step: the preview rows are sent to the new version and every one must be
  answered; once the step has lasted its interval (the replicas have loaded and warmed the new
  version meanwhile), all traffic switches at once.
- blue/green, switched: the new version is judged against the old one's traffic just before the
  switch; a fail switches back at once (the old version is still warm); a pass after `keep_warm`
  finishes the rollout and unloads the old version.
- shadow: the copies are judged against the stable answers to the same requests; a fail stops
  the copies at once; a pass after `duration` ends the rollout as passed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import pyarrow as pa

from shipyard.core.refs import ModelRef
from shipyard.errors import GateError, RolloutConflictError, ShipyardError
from shipyard.monitoring.events import read_events
from shipyard.monitoring.feedback import FeedbackStore, decode_labels
from shipyard.registry.registry import Registry
from shipyard.rollout.analysis import Verdict, analyse
from shipyard.rollout.deployments import Deployments
from shipyard.rollout.lease import Lease
from shipyard.rollout.plan import Plan
from shipyard.rollout.rollouts import Rollout, Rollouts
from shipyard.store.metadata import utcnow

__all__ = [
    "ANALYSIS_SECONDS",
    "LEASE",
    "Controller",
    "Decision",
    "Preview",
    "preview_with_registry",
    "step_verdict",
]

log = logging.getLogger("shipyard.rollout")

#: The lease every controller competes for.
LEASE = "rollout-controller"
#: The least time between two analyses of one rollout's step.
ANALYSIS_SECONDS = 5.0

Action = Literal["advance", "roll_back", "hold", "wait", "paused"]

#: Sends a blue/green preview's rows to a version and returns one problem per row not answered.
Preview = Callable[[ModelRef, Sequence[Mapping[str, Any]]], list[str]]


@dataclass(frozen=True)
class Decision:
    """What the controller did with one rollout on one tick."""

    deployment: str
    rollout: int
    action: Action
    reason: str
    state: str
    step: int

    def __str__(self) -> str:
        return (
            f"{self.deployment}: rollout {self.rollout} {self.action} (step {self.step + 1}): {self.reason}"
        )


def preview_with_registry(registry: Registry, *, trust_pickle: bool = False) -> Preview:
    """A preview that loads the version from the registry (digest checked) and predicts each row."""

    def preview(ref: ModelRef, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        try:
            loaded = registry.load(ref, trust_pickle=trust_pickle)
        except ShipyardError as exc:
            return [f"{ref} cannot be loaded: {exc}"]
        problems = []
        for i, row in enumerate(rows, start=1):
            try:
                loaded.predict([dict(row)])
            except ShipyardError as exc:
                problems.append(f"preview row {i}: {exc}")
        return problems

    return preview


class Controller:
    """Analyse and move every running rollout; call `tick` on a timer, or `run` in a thread.

    Args:
        registry: the registry whose metadata store holds the rollouts.
        holder: who this controller is, for the lease (host, pid and a random part by default).
        lease_seconds: how long the lease lasts; another replica takes over this long after a crash.
        analysis_seconds: the least time between two analyses of one rollout (each reads the
            step's window of the prediction log).
        preview: how a blue/green preview reaches the new version.
        trust_pickle: let the default preview load custom Python models (as `serve --trust-pickle`).
    """

    def __init__(
        self,
        registry: Registry,
        *,
        holder: str | None = None,
        lease_seconds: float = 15.0,
        analysis_seconds: float = ANALYSIS_SECONDS,
        preview: Preview | None = None,
        trust_pickle: bool = False,
    ) -> None:
        self.registry = registry
        self.rollouts = Rollouts(registry, actor="rollout-controller")
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = Lease(registry.meta, LEASE, self.holder, seconds=lease_seconds)
        self.analysis_seconds = analysis_seconds
        self.preview = preview or preview_with_registry(registry, trust_pickle=trust_pickle)
        self._noted: set[tuple[int, int, str]] = set()  # (rollout, step, kind) already in the history
        self._analysed: dict[tuple[int, int], tuple[datetime, Verdict]] = {}

    # -- running --------------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, every: float = 2.0) -> None:
        """Tick every `every` seconds until `stop` is set, then give the lease up."""
        try:
            while not stop.is_set():
                try:
                    for decision in self.tick():
                        if decision.action in ("advance", "roll_back", "paused"):
                            log.warning("%s", decision)
                except Exception:  # a bad tick must not end the controller; the next one retries
                    log.exception("the rollout controller's tick failed")
                stop.wait(every)
        finally:
            try:
                self.lease.release()
            except ShipyardError:
                log.warning("could not release the rollout controller's lease; it expires by itself")

    def tick(self, now: datetime | None = None) -> list[Decision]:
        """One pass over the running rollouts, if this controller holds the lease (else nothing).

        Args:
            now: the time to judge by (the clock by default).
        """
        if not self.lease.acquire():
            return []
        decisions: list[Decision] = []
        running = self.rollouts.active()
        self._forget({r.id for r in running})
        for rollout in running:
            if rollout.state != "progressing":
                continue
            if decisions and not self.lease.acquire():
                break  # renewed before each move: a long tick must not outlive the lease
            try:
                decisions.append(self._judge(rollout, now or utcnow()))
            except RolloutConflictError:
                continue  # steered by hand, or moved by another controller, since we read it
            except Exception as exc:  # one rollout that cannot be judged must not hold up the others
                log.warning("rollout %d on %s cannot be judged: %s", rollout.id, rollout.deployment, exc)
                # If the store is unavailable too, the warning above says so and the next tick retries.
                with contextlib.suppress(ShipyardError):
                    self._note_once(rollout, "error", {"reason": f"{type(exc).__name__}: {exc}"})
        return decisions

    def _forget(self, running: set[int]) -> None:
        """Drop what is remembered of rollouts that have ended."""
        self._noted = {k for k in self._noted if k[0] in running}
        self._analysed = {k: v for k, v in self._analysed.items() if k[0] in running}

    # -- judging --------------------------------------------------------------------------------
    def _judge(self, rollout: Rollout, now: datetime) -> Decision:
        plan = rollout.plan
        elapsed = (now - rollout.step_started_at).total_seconds()
        if plan.strategy == "blue-green" and rollout.step == 0:
            return self._preview(rollout, elapsed)
        due = _due(plan)
        # Within the step a verdict a few seconds old will do; once it is due, judge what is there now.
        verdict = self._verdict(rollout, now, fresh=elapsed >= due)
        if verdict.status == "fail":
            ended = self.rollouts.roll_back(rollout, reason=verdict.reason, verdict=verdict.to_dict())
            return _decision(ended, "roll_back", verdict.reason)
        if elapsed < due:
            return _decision(
                rollout, "hold", f"{verdict.status} so far; the step lasts {due - elapsed:.0f}s more"
            )
        if verdict.status == "wait":
            self._note_once(rollout, "wait", verdict.to_dict())
            return _decision(rollout, "wait", verdict.reason)
        return self._advance(rollout, verdict.to_dict(), verdict.reason)

    def _verdict(self, rollout: Rollout, now: datetime, *, fresh: bool) -> Verdict:
        """The step's analysis: at most once per `analysis_seconds`, unless `fresh`."""
        key = (rollout.id, rollout.step)
        cached = self._analysed.get(key)
        if not fresh and cached is not None and (now - cached[0]).total_seconds() < self.analysis_seconds:
            return cached[1]
        verdict = step_verdict(self.registry, rollout, now, analysis_seconds=self.analysis_seconds)
        self._analysed = {k: v for k, v in self._analysed.items() if k[0] != rollout.id}
        self._analysed[key] = (now, verdict)
        return verdict

    def _preview(self, rollout: Rollout, elapsed: float) -> Decision:
        plan = rollout.plan
        if plan.preview and (rollout.id, 0, "preview") not in self._noted:
            model = self.rollouts.deployments.get(rollout.deployment).model
            problems = self.preview(ModelRef(model, version=rollout.version), plan.preview)
            detail = {"rows": len(plan.preview), "answered": len(plan.preview) - len(problems)}
            if problems:
                reason = f"{len(problems)} of {len(plan.preview)} preview rows failed: {problems[0]}"
                ended = self.rollouts.roll_back(
                    rollout, reason=reason, verdict=detail | {"verdict": "fail", "problems": problems[:20]}
                )
                return _decision(ended, "roll_back", reason)
            self._note_once(rollout, "preview", detail | {"verdict": "pass"})
        if elapsed < plan.interval:
            return _decision(rollout, "hold", f"preview; switching in {plan.interval - elapsed:.0f}s")
        answered = f"all {len(plan.preview)} preview rows answered" if plan.preview else "no preview rows"
        return self._advance(rollout, {"verdict": "pass", "reason": answered}, answered)

    def _advance(self, rollout: Rollout, verdict: dict[str, Any], reason: str) -> Decision:
        try:
            moved = self.rollouts.advance(rollout, verdict=verdict)
        except GateError as exc:
            # The alias is protected and the version has not passed its gates: hold the rollout
            # for a person (who can pass the gates and resume, or abort) instead of retrying.
            paused = self.rollouts.pause(rollout.deployment, reason=f"promotion blocked by the gates: {exc}")
            return _decision(paused, "paused", paused.reason)
        return _decision(moved, "advance", reason)

    def _note_once(self, rollout: Rollout, kind: str, detail: dict[str, Any]) -> None:
        key = (rollout.id, rollout.step, kind)
        if key not in self._noted:
            self.rollouts.note(rollout, kind, detail)
            self._noted.add(key)


def step_verdict(
    registry: Registry,
    rollout: Rollout,
    now: datetime | None = None,
    *,
    analysis_seconds: float = ANALYSIS_SECONDS,
) -> Verdict:
    """The analysis of the rollout's current step on its window of the prediction log, now.

    The controller acts on it; `shipyard rollout status` shows it. A step is analysed every
    `analysis_seconds` and once more when it is due, so each look tests at alpha / looks.
    """
    looks = max(1, math.ceil(_due(rollout.plan) / max(analysis_seconds, 1.0))) + 1
    now = now or utcnow()
    deployment = Deployments(registry).get(rollout.deployment)
    version = registry.get(ModelRef(deployment.model, version=rollout.version))
    plan = rollout.plan
    since = rollout.step_started_at
    if plan.strategy == "blue-green":
        # The old version answers nothing after the switch: judge the new one against the old
        # one's traffic just before it.
        since -= timedelta(seconds=max(plan.keep_warm, plan.interval))
    events = read_events(
        registry.settings.store_url,
        deployment.model,
        since=since,
        until=now,
        cipher=registry.artifacts.cipher,
    )
    if plan.strategy == "blue-green":
        events = _split_at(events, rollout.step_started_at, old=rollout.from_version)
    return analyse(
        events,
        stable=rollout.from_version,
        new=rollout.version,
        rules=plan.rules,
        shadow=plan.strategy == "shadow",
        labels=_labels(FeedbackStore(registry), since, events),
        task=version.contract.task,
        looks=looks,
    )


def _labels(store: FeedbackStore, since: datetime, events: pa.Table) -> dict[tuple[str, int], Any]:
    """The labels, by (request id, row), of the window's requests."""
    if events.num_rows == 0 or "request_id" not in events.column_names:
        return {}
    table = store.labels(since=since, request_ids=set(events["request_id"].to_pylist()))
    ids, rows = table["request_id"].to_pylist(), table["row"].to_pylist()
    labels = decode_labels(table["label"].to_pylist())
    return {(i, int(r)): y for i, r, y in zip(ids, rows, labels, strict=True)}


def _due(plan: Plan) -> float:
    """Seconds a step lasts at least before it may pass (the switched blue/green: keep_warm)."""
    return {"canary": plan.interval, "blue-green": plan.keep_warm, "shadow": plan.duration}[plan.strategy]


def _split_at(events: pa.Table, switch: datetime, *, old: int) -> pa.Table:
    """The old version's events before the switch and every other version's after it."""
    import pyarrow.compute as pc

    if events.num_rows == 0 or "version" not in events.column_names:
        return events
    at = pa.scalar(switch, pa.timestamp("us", tz="UTC"))
    before = pc.less(events["time"], at)
    is_old = pc.equal(events["version"], old)
    return events.filter(pc.or_(pc.and_(is_old, before), pc.and_(pc.invert(is_old), pc.invert(before))))


def _decision(rollout: Rollout, action: Action, reason: str) -> Decision:
    return Decision(rollout.deployment, rollout.id, action, reason, rollout.state, rollout.step)
