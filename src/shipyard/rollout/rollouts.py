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

from sqlalchemy import Connection, Row, insert, select, update

from shipyard.core.refs import ModelRef
from shipyard.errors import ConflictError, NotFoundError, RolloutConflictError, RolloutError
from shipyard.registry.queries import move_alias, record_change, resolve
from shipyard.registry.registry import Registry
from shipyard.registry.results import judge_alias_move
from shipyard.rollout.deployments import Arm, Deployment, Deployments
from shipyard.rollout.plan import Plan
from shipyard.security.access import Action
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

    Args:
        registry: the registry (its metadata store holds deployments and rollouts).
        actor: who acts, for the history and the change log (the registry's actor by default).
    """

    def __init__(self, registry: Registry, *, actor: str | None = None) -> None:
        self.registry = registry
        self.meta = registry.meta
        self.deployments = Deployments(registry)
        self.actor = actor or registry.actor

    # -- reading --------------------------------------------------------------------------------
    def current(self, deployment: str) -> Rollout | None:
        """The deployment's newest rollout, running or finished, or None.

        Raises:
            DeploymentNotFoundError: no such deployment.
        """
        with self.meta.read() as conn:
            found = self.deployments.read(conn, deployment)
            newest = self._newest(conn, deployment)
        self.registry.allow(Action.READ, found.model)
        return newest

    def active(self) -> list[Rollout]:
        """Every rollout that runs or is paused (of the deployments the principal may see)."""
        self.registry.allow(Action.READ)
        with self.meta.read() as conn:
            rows = conn.execute(
                self._query()
                .add_columns(deployments.c.model.label("deployment_model"))
                .where(rollouts.c.active.is_not(None))
                .order_by(rollouts.c.id)
            ).all()
        sees = self.registry.principal.sees
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
        self.registry.allow(Action.ROLLOUT, ref.name)

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
            self._log(
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
            arms = _arms(plan, 0, new=version, old=found.stable.version)
            self._move(conn, rollout_id, found, arms, "step", step=0, detail={})
            return rollout_id

        rollout_id = self.meta.write(change)
        return self._by_id(rollout_id)

    # -- steering by hand -----------------------------------------------------------------------
    def pause(self, deployment: str, *, reason: str = "") -> Rollout:
        """Hold the rollout at its step: arms stay, the controller waits.

        Raises:
            RolloutConflictError: no rollout is progressing.
        """
        self.registry.allow(Action.ROLLOUT, self.deployments.get(deployment).model)
        return self._transition(deployment, "pause", reason, allowed=("progressing",))

    def resume(self, deployment: str, *, reason: str = "") -> Rollout:
        """Carry on a paused rollout; its step's interval starts again.

        Raises:
            RolloutConflictError: no rollout is paused.
        """
        self.registry.allow(Action.ROLLOUT, self.deployments.get(deployment).model)
        return self._transition(deployment, "resume", reason, allowed=("paused",))

    def promote(self, deployment: str, *, reason: str = "") -> Rollout:
        """Promote now, skipping the remaining steps (the alias still goes through the gates).

        Raises:
            RolloutConflictError: no rollout is running.
            GateError: the alias is protected and the version has no passing gate result.
        """
        self.registry.allow(Action.ROLLOUT, self.deployments.get(deployment).model)
        return self._transition(deployment, "promote", reason, allowed=("progressing", "paused"))

    def abort(self, deployment: str, *, reason: str = "") -> Rollout:
        """Stop the rollout and give all traffic back to the version stable before it.

        Raises:
            RolloutConflictError: no rollout is running.
        """
        self.registry.allow(Action.ROLLOUT, self.deployments.get(deployment).model)
        return self._transition(deployment, "abort", reason, allowed=("progressing", "paused"))

    # -- the controller's moves -----------------------------------------------------------------
    def advance(self, rollout: Rollout, *, verdict: Mapping[str, Any]) -> Rollout:
        """The step passed its analysis: take the next step, or promote after the last."""
        return self._transition(
            rollout.deployment,
            "advance",
            "the analysis passed",
            allowed=("progressing",),
            judged=rollout,
            detail=verdict,
        )

    def roll_back(self, rollout: Rollout, *, reason: str, verdict: Mapping[str, Any]) -> Rollout:
        """A rule failed: all traffic back to the old version at once."""
        return self._transition(
            rollout.deployment,
            "roll_back",
            reason,
            allowed=("progressing", "paused"),
            judged=rollout,
            detail=verdict,
        )

    def note(self, rollout: Rollout, kind: str, detail: Mapping[str, Any]) -> None:
        """Record a verdict that changes nothing (such as *wait*) in the history and the change log."""

        def change(conn: Connection) -> None:
            found = self.deployments.read(conn, rollout.deployment)
            self._log(conn, rollout.id, found, kind, step=rollout.step, detail=dict(detail))

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
                self._set(conn, rollout, state="paused", reason=reason)
                self._log(conn, rollout.id, found, "pause", step=rollout.step, detail=extra)
            elif action == "resume":
                self._set(conn, rollout, state="progressing", step_started_at=now, reason=reason)
                self._log(conn, rollout.id, found, "resume", step=rollout.step, detail=extra)
            elif action in ("abort", "roll_back"):
                ended: State = "aborted" if action == "abort" else "rolled_back"
                if rollout.plan.strategy == "blue-green" and rollout.step >= 1:
                    self._restore_alias(conn, rollout, found)  # it moved at the switch
                self._set(conn, rollout, state=ended, reason=reason, finished=now)
                old = [Arm(rollout.from_version, "stable", 100.0)]
                self._move(conn, rollout.id, found, old, ended, step=rollout.step, detail=extra)
            elif rollout.plan.strategy == "shadow" and action in ("promote", "advance"):
                # The analysis passed; a shadow moves no traffic, so only the copies stop.
                self._set(conn, rollout, state="passed", reason=reason, finished=now)
                old = [Arm(rollout.from_version, "stable", 100.0)]
                self._move(conn, rollout.id, found, old, "passed", step=rollout.step, detail=extra)
            elif action == "promote" or rollout.step >= rollout.plan.last_step:
                if not (rollout.plan.strategy == "blue-green" and rollout.step >= 1):
                    self._move_alias(conn, rollout, found)  # blue/green moved it at the switch
                self._set(conn, rollout, state="promoted", reason=reason, finished=now)
                new = [Arm(rollout.version, "stable", 100.0)]
                self._move(conn, rollout.id, found, new, "promoted", step=rollout.step, detail=extra)
            else:  # advance to the next step
                step = rollout.step + 1
                if rollout.plan.strategy == "blue-green" and step == 1:
                    self._move_alias(conn, rollout, found)
                self._set(conn, rollout, step=step, step_started_at=now)
                arms = _arms(rollout.plan, step, new=rollout.version, old=rollout.from_version)
                self._move(conn, rollout.id, found, arms, "step", step=step, detail=extra)
            return rollout.id

        return self._by_id(self.meta.write(change))

    def _move(
        self,
        conn: Connection,
        rollout_id: int,
        found: Deployment,
        arms: list[Arm],
        kind: str,
        *,
        step: int,
        detail: dict[str, Any],
    ) -> None:
        """Give the deployment `arms` and record why: the history entry carries them."""
        self.deployments.write_arms(
            conn, found.name, arms, reason=f"rollout {rollout_id} {kind} (step {step + 1})"
        )
        self._log(
            conn, rollout_id, found, kind, step=step, detail=detail | {"arms": [a.to_dict() for a in arms]}
        )

    def _move_alias(self, conn: Connection, rollout: Rollout, found: Deployment) -> None:
        """Move the deployment's alias to the new version, through the gates (`GateError` undoes all)."""
        if found.alias is None or not rollout.plan.promote_alias:
            return
        row = resolve(conn, ModelRef(found.model, version=rollout.version))
        detail = judge_alias_move(conn, self.registry.settings, row, found.alias, force=False, reason=None)
        self._point_alias(conn, rollout, found, row, detail)

    def _restore_alias(self, conn: Connection, rollout: Rollout, found: Deployment) -> None:
        """Point the alias back at the old version, if the switch moved it and nobody moved it since.

        No gates: the old version held the alias until the switch, and a rollback must not be
        refused.
        """
        if found.alias is None or not rollout.plan.promote_alias:
            return
        try:
            row = resolve(conn, ModelRef(found.model, alias=found.alias))
        except (NotFoundError, ConflictError):
            return  # the alias was removed, or moved to a version since archived
        if int(row.version) != rollout.version:
            return
        old = resolve(conn, ModelRef(found.model, version=rollout.from_version))
        self._point_alias(conn, rollout, found, old, {"alias": found.alias, "rolled_back": True})

    def _point_alias(
        self, conn: Connection, rollout: Rollout, found: Deployment, row: Row[Any], detail: dict[str, Any]
    ) -> None:
        """Point the deployment's alias at version `row` and record the move in the change log."""
        assert found.alias is not None
        move_alias(conn, row.model_id, found.alias, row.id, utcnow())
        record_change(
            conn,
            "alias",
            actor=self.actor,
            model=found.model,
            version=int(row.version),
            detail=detail | {"rollout": rollout.id, "deployment": found.name},
        )

    def _set(
        self,
        conn: Connection,
        rollout: Rollout,
        *,
        state: State | None = None,
        step: int | None = None,
        step_started_at: datetime | None = None,
        reason: str | None = None,
        finished: datetime | None = None,
    ) -> None:
        values: dict[str, Any] = {"updated_at": utcnow()}
        if state is not None:
            values["state"] = state
        if step is not None:
            values["step"] = step
        if step_started_at is not None:
            values["step_started_at"] = step_started_at
        if reason:
            values["reason"] = reason
        if finished is not None:
            values["finished_at"] = finished
            values["active"] = None
        conn.execute(update(rollouts).where(rollouts.c.id == rollout.id).values(**values))

    def _log(
        self,
        conn: Connection,
        rollout_id: int,
        found: Deployment,
        kind: str,
        *,
        step: int,
        detail: dict[str, Any],
    ) -> None:
        conn.execute(
            insert(rollout_history).values(
                rollout_id=rollout_id, at=utcnow(), kind=kind, step=step, actor=self.actor, detail=detail
            )
        )
        record_change(
            conn,
            f"rollout.{kind}",
            actor=self.actor,
            model=found.model,
            version=None,
            detail={"deployment": found.name, "rollout": rollout_id, "step": step} | detail,
        )

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


def _arms(plan: Plan, step: int, *, new: int, old: int) -> list[Arm]:
    """The deployment's arms at `step` of `plan`."""
    if plan.strategy == "canary":
        weight = plan.steps[step]  # below 100: passing the last such step promotes
        return [Arm(old, "stable", 100.0 - weight), Arm(new, "canary", weight)]
    if plan.strategy == "blue-green":
        if step == 0:  # loaded and warmed, answering only the preview
            return [Arm(old, "stable", 100.0), Arm(new, "canary", 0.0)]
        return [Arm(new, "stable", 100.0), Arm(old, "canary", 0.0)]  # the old one kept warm
    return [Arm(old, "stable", 100.0), Arm(new, "shadow", plan.shadow_share)]


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
