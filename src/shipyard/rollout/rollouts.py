"""Rollouts: the state machine that moves a deployment's arms, each change one transaction.

    progressing --(pause)--> paused --(resume)--> progressing
    progressing --(every step passes)--> promoted      (canary, blue/green)
    progressing --(the analysis passes)--> passed      (shadow: nothing moved)
    progressing | paused --(a rule fails)--> rolled_back
    progressing | paused --(abort)--> aborted

Every transition writes the deployment's new arms, the rollout's state, a history entry and a
change-log entry in one transaction, so a crash leaves either the old state or the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Row, insert, select

from shipyard.core.refs import ModelRef
from shipyard.errors import RolloutConflictError, RolloutError
from shipyard.registry.queries import resolve
from shipyard.rollout.deployments import Arm, Deployments
from shipyard.rollout.plan import Plan
from shipyard.rollout.writes import RolloutWrites, arms_at
from shipyard.security.access import Action
from shipyard.security.context import Context, HasContext, context_of
from shipyard.store.metadata import as_utc, utcnow
from shipyard.store.schema import deployments, rollout_history, rollouts

__all__ = ["FINISHED", "HistoryEntry", "Rollout", "Rollouts", "State"]

State = Literal["progressing", "paused", "promoted", "passed", "rolled_back", "aborted"]
FINISHED: tuple[State, ...] = ("promoted", "passed", "rolled_back", "aborted")


@dataclass(frozen=True)
class Rollout:
    """One rollout of a version to a deployment, as stored."""

    id: int
    deployment: str
    version: int
    from_version: int
    state: State
    step: int
    step_started_at: datetime
    plan: Plan
    reason: str
    actor: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def active(self) -> bool:
        """True while the rollout runs or is paused."""
        return self.state not in FINISHED

    @property
    def phase(self) -> str:
        """What the current step is, in words."""
        plan = self.plan
        if plan.strategy == "canary":
            return f"canary step {self.step + 1} of {len(plan.steps)} ({plan.steps[self.step]:g}%)"
        if plan.strategy == "blue-green":
            return "preview" if self.step == 0 else "switched; old version kept warm"
        return f"shadow ({plan.shadow_share:g}% of requests copied)"

    def to_dict(self) -> dict[str, Any]:
        """The rollout as JSON-safe data."""
        return {
            "id": self.id,
            "deployment": self.deployment,
            "version": self.version,
            "from_version": self.from_version,
            "state": self.state,
            "step": self.step,
            "phase": self.phase,
            "step_started_at": self.step_started_at.isoformat(),
            "plan": self.plan.to_dict(),
            "reason": self.reason,
            "actor": self.actor,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded step, verdict or decision of a rollout."""

    rollout: int
    at: datetime
    kind: str
    step: int
    actor: str
    detail: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-safe data."""
        return {
            "rollout": self.rollout,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "step": self.step,
            "actor": self.actor,
            "detail": dict(self.detail),
        }


class Rollouts:
    """Start and steer rollouts; the controller and the CLI both go through here.

    Each action is checked on the deployment's model: reading needs the reader role, starting
    and steering (by hand or by the controller) the rollout role.

    Args:
        context: who acts, the settings and the metadata store (which holds deployments and
            rollouts); or anything holding one, such as a `Registry`.
        actor: who acts, for the history and the change log (the context's actor by default).
    """

    def __init__(self, context: Context | HasContext, *, actor: str | None = None) -> None:
        own = context_of(context)
        self.context = own if actor is None else own.acting_as(actor)
        self.meta = self.context.meta
        self.actor = self.context.actor
        self.deployments = Deployments(self.context)
        self.writes = RolloutWrites(self.deployments, self.context.settings, self.actor)

    # -- reading --------------------------------------------------------------------------------
    def current(self, deployment: str) -> Rollout | None:
        """The deployment's newest rollout, running or finished, or None.

        Raises:
            DeploymentNotFoundError: no such deployment.
        """
        with self.meta.read() as conn:
            found = self.deployments.read(conn, deployment)
            newest = self._newest(conn, deployment)
        self.context.allow(Action.READ, found.model)
        return newest

    def active(self) -> list[Rollout]:
        """Every rollout that runs or is paused (of the deployments the principal may see)."""
        self.context.allow(Action.READ)
        with self.meta.read() as conn:
            rows = conn.execute(
                self._query()
                .add_columns(deployments.c.model.label("deployment_model"))
                .where(rollouts.c.active.is_not(None))
                .order_by(rollouts.c.id)
            ).all()
        sees = self.context.principal.sees
        return [_rollout(r) for r in rows if sees(r.deployment_model)]

    def history(self, deployment: str, *, limit: int = 1000) -> list[HistoryEntry]:
        """The deployment's rollout history, oldest first.

        Raises:
            DeploymentNotFoundError: no such deployment.
        """
        self.deployments.get(deployment)  # which checks that the principal may read it
        with self.meta.read() as conn:
            deployment_id = self.deployments.row(conn, deployment).id
            rows = conn.execute(
                select(rollout_history)
                .join(rollouts, rollouts.c.id == rollout_history.c.rollout_id)
                .where(rollouts.c.deployment_id == deployment_id)
                .order_by(rollout_history.c.id.desc())
                .limit(limit)
            ).all()
        return [
            HistoryEntry(int(r.rollout_id), as_utc(r.at), r.kind, int(r.step), r.actor, r.detail)
            for r in reversed(rows)
        ]

    # -- starting -------------------------------------------------------------------------------
    def start(self, deployment: str, to: str | ModelRef, plan: Plan, *, reason: str = "") -> Rollout:
        """Start rolling `to` out to `deployment` by `plan`: its first step's arms are written now.

        Raises:
            DeploymentNotFoundError: no such deployment.
            RolloutConflictError: a rollout already runs on it, or `to` is already its stable version.
            RolloutError: `to` is archived, of another model, or cannot answer the deployment's requests.
            NotFoundError: no such version.
        """
        ref = to if isinstance(to, ModelRef) else ModelRef.parse(to)
        self.context.allow(Action.ROLLOUT, ref.name)

        def change(conn: Connection) -> int:
            found = self.deployments.read(conn, deployment)
            if ref.name != found.model:
                raise RolloutError(
                    f"deployment {deployment!r} serves model {found.model!r}; it cannot roll out {ref}. "
                    f"Roll out a version of {found.model!r}, e.g. '{found.model}:5'"
                )
            running = self._newest(conn, deployment)
            if running is not None and running.active:
                raise RolloutConflictError(
                    f"rollout {running.id} of {found.model}:{running.version} is {running.state} on "
                    f"{deployment!r}; finish it first ('shipyard rollout promote|abort {deployment}')"
                )
            version = int(resolve(conn, ref).version)
            if version == found.stable.version:
                raise RolloutConflictError(
                    f"{found.model}:{version} is already the stable version of {deployment!r}; "
                    "nothing to roll out"
                )
            stable = self.deployments.check_version(conn, found, found.stable.version)
            self.deployments.check_version(conn, found, version, against=stable)
            now = utcnow()
            deployment_id = self.deployments.row(conn, deployment).id
            rollout_id = int(
                conn.execute(
                    insert(rollouts)
                    .values(
                        deployment_id=deployment_id,
                        active=deployment_id,
                        version=version,
                        from_version=found.stable.version,
                        strategy=plan.strategy,
                        state="progressing",
                        step=0,
                        step_started_at=now,
                        plan=plan.to_dict(),
                        reason=reason,
                        actor=self.actor,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(rollouts.c.id)
                ).scalar_one()
            )
            self.writes.log(
                conn,
                rollout_id,
                found,
                "start",
                step=0,
                detail={
                    "to": version,
                    "from": found.stable.version,
                    "plan": plan.to_dict(),
                    "reason": reason,
                },
            )
            arms = arms_at(plan, 0, new=version, old=found.stable.version)
            self.writes.move(conn, rollout_id, found, arms, "step", step=0, detail={})
            return rollout_id

        rollout_id = self.meta.write(change)
        return self._by_id(rollout_id)

    # -- steering by hand -----------------------------------------------------------------------
    def pause(self, deployment: str, *, reason: str = "") -> Rollout:
        """Hold the rollout at its step: arms stay, the controller waits.

        Raises:
            RolloutConflictError: no rollout is progressing.
        """
        self.context.allow(Action.ROLLOUT, self.deployments.get(deployment).model)
        return self._transition(deployment, "pause", reason, allowed=("progressing",))

    def resume(self, deployment: str, *, reason: str = "") -> Rollout:
        """Carry on a paused rollout; its step's interval starts again.

        Raises:
            RolloutConflictError: no rollout is paused.
        """
        self.context.allow(Action.ROLLOUT, self.deployments.get(deployment).model)
        return self._transition(deployment, "resume", reason, allowed=("paused",))

    def promote(self, deployment: str, *, reason: str = "") -> Rollout:
        """Promote now, skipping the remaining steps (the alias still goes through the gates).

        Raises:
            RolloutConflictError: no rollout is running.
            GateError: the alias is protected and the version has no passing gate result.
        """
        self.context.allow(Action.ROLLOUT, self.deployments.get(deployment).model)
        return self._transition(deployment, "promote", reason, allowed=("progressing", "paused"))

    def abort(self, deployment: str, *, reason: str = "") -> Rollout:
        """Stop the rollout and give all traffic back to the version stable before it.

        Raises:
            RolloutConflictError: no rollout is running.
        """
        self.context.allow(Action.ROLLOUT, self.deployments.get(deployment).model)
        return self._transition(deployment, "abort", reason, allowed=("progressing", "paused"))

    # -- the controller's moves -----------------------------------------------------------------
    def advance(self, rollout: Rollout, *, verdict: Mapping[str, Any]) -> Rollout:
        """The step passed its analysis: take the next step, or promote after the last.

        Raises:
            PermissionDeniedError: the principal may not roll out the deployment's model.
            RolloutConflictError: the rollout moved on since it was judged.
        """
        return self._judged(rollout, "advance", "the analysis passed", ("progressing",), verdict)

    def roll_back(self, rollout: Rollout, *, reason: str, verdict: Mapping[str, Any]) -> Rollout:
        """A rule failed: all traffic back to the old version at once.

        Raises:
            PermissionDeniedError: the principal may not roll out the deployment's model.
            RolloutConflictError: the rollout moved on since it was judged.
        """
        return self._judged(rollout, "roll_back", reason, ("progressing", "paused"), verdict)

    def _judged(
        self, rollout: Rollout, move: str, reason: str, allowed: tuple[State, ...], verdict: Mapping[str, Any]
    ) -> Rollout:
        """The controller's move on `rollout` as it was judged (refused if it moved on since)."""
        self.context.allow(Action.ROLLOUT, self.deployments.get(rollout.deployment).model)
        return self._transition(
            rollout.deployment, move, reason, allowed=allowed, judged=rollout, detail=verdict
        )

    def note(self, rollout: Rollout, kind: str, detail: Mapping[str, Any]) -> None:
        """Record a verdict that changes nothing (such as *wait*) in the history and the change log.

        Raises:
            PermissionDeniedError: the principal may not roll out the deployment's model.
        """
        self.context.allow(Action.ROLLOUT, self.deployments.get(rollout.deployment).model)

        def change(conn: Connection) -> None:
            found = self.deployments.read(conn, rollout.deployment)
            self.writes.log(conn, rollout.id, found, kind, step=rollout.step, detail=dict(detail))

        self.meta.write(change)

    # -- internals ------------------------------------------------------------------------------
    def _transition(
        self,
        deployment: str,
        action: str,
        reason: str,
        *,
        allowed: tuple[State, ...],
        judged: Rollout | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Rollout:
        """One change of state, in one transaction.

        `judged` is the rollout as the controller analysed it: the move happens only if it is still
        at that step (a controller that lost its lease mid-tick cannot move a step twice).
        """

        def change(conn: Connection) -> int:
            found = self.deployments.read(conn, deployment)
            rollout = self._newest(conn, deployment)
            if (
                rollout is None
                or rollout.state not in allowed
                or (
                    judged is not None
                    and (rollout.id, rollout.step, rollout.step_started_at)
                    != (judged.id, judged.step, judged.step_started_at)
                )
            ):
                now_is = "none has run" if rollout is None else f"rollout {rollout.id} is {rollout.state}"
                if rollout is not None and judged is not None and rollout.state in allowed:
                    now_is = f"rollout {rollout.id} moved on since step {judged.step + 1} was judged"
                raise RolloutConflictError(
                    f"cannot {action.replace('_', ' ')} on {deployment!r}: {now_is}; "
                    f"this needs a rollout that is {' or '.join(allowed)}"
                )
            now = utcnow()
            extra = dict(detail or {}) | ({"reason": reason} if reason else {})
            if action == "pause":
                self.writes.set(conn, rollout, state="paused", reason=reason)
                self.writes.log(conn, rollout.id, found, "pause", step=rollout.step, detail=extra)
            elif action == "resume":
                self.writes.set(conn, rollout, state="progressing", step_started_at=now, reason=reason)
                self.writes.log(conn, rollout.id, found, "resume", step=rollout.step, detail=extra)
            elif action in ("abort", "roll_back"):
                ended: State = "aborted" if action == "abort" else "rolled_back"
                if rollout.plan.strategy == "blue-green" and rollout.step >= 1:
                    self.writes.restore_alias(conn, rollout, found)  # it moved at the switch
                self.writes.set(conn, rollout, state=ended, reason=reason, finished=now)
                old = [Arm(rollout.from_version, "stable", 100.0)]
                self.writes.move(conn, rollout.id, found, old, ended, step=rollout.step, detail=extra)
            elif rollout.plan.strategy == "shadow" and action in ("promote", "advance"):
                # The analysis passed; a shadow moves no traffic, so only the copies stop.
                self.writes.set(conn, rollout, state="passed", reason=reason, finished=now)
                old = [Arm(rollout.from_version, "stable", 100.0)]
                self.writes.move(conn, rollout.id, found, old, "passed", step=rollout.step, detail=extra)
            elif action == "promote" or rollout.step >= rollout.plan.last_step:
                if not (rollout.plan.strategy == "blue-green" and rollout.step >= 1):
                    self.writes.move_alias(conn, rollout, found)  # blue/green moved it at the switch
                self.writes.set(conn, rollout, state="promoted", reason=reason, finished=now)
                new = [Arm(rollout.version, "stable", 100.0)]
                self.writes.move(conn, rollout.id, found, new, "promoted", step=rollout.step, detail=extra)
            else:  # advance to the next step
                step = rollout.step + 1
                if rollout.plan.strategy == "blue-green" and step == 1:
                    self.writes.move_alias(conn, rollout, found)
                self.writes.set(conn, rollout, step=step, step_started_at=now)
                arms = arms_at(rollout.plan, step, new=rollout.version, old=rollout.from_version)
                self.writes.move(conn, rollout.id, found, arms, "step", step=step, detail=extra)
            return rollout.id

        return self._by_id(self.meta.write(change))

    def _query(self) -> Any:
        return select(rollouts, deployments.c.name.label("deployment")).join(
            deployments, deployments.c.id == rollouts.c.deployment_id
        )

    def _newest(self, conn: Connection, deployment: str) -> Rollout | None:
        row = conn.execute(
            self._query().where(deployments.c.name == deployment).order_by(rollouts.c.id.desc()).limit(1)
        ).first()
        return _rollout(row) if row is not None else None

    def _by_id(self, rollout_id: int) -> Rollout:
        with self.meta.read() as conn:
            return _rollout(conn.execute(self._query().where(rollouts.c.id == rollout_id)).one())


def _rollout(row: Row[Any]) -> Rollout:
    return Rollout(
        id=int(row.id),
        deployment=row.deployment,
        version=int(row.version),
        from_version=int(row.from_version),
        state=row.state,
        step=int(row.step),
        step_started_at=as_utc(row.step_started_at),
        plan=Plan.from_dict(row.plan),
        reason=row.reason,
        actor=row.actor,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        finished_at=as_utc(row.finished_at) if row.finished_at is not None else None,
    )
