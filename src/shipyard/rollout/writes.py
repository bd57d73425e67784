"""The rows one rollout transition writes, inside the caller's transaction.

The deployment's arms, the rollout's row, its history entry and change-log entry, and the
deployment's alias (through the gates when it moves forward, without them when it goes back).
`Rollouts` decides which transition happens; `RolloutWrites` writes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, insert, update

from shipyard.config import Settings
from shipyard.core.refs import ModelRef
from shipyard.errors import ConflictError, NotFoundError
from shipyard.registry.queries import move_alias, record_change, resolve
from shipyard.registry.results import judge_alias_move
from shipyard.rollout.deployments import Arm, Deployment, Deployments
from shipyard.rollout.plan import Plan
from shipyard.store.metadata import utcnow
from shipyard.store.schema import rollout_history, rollouts

if TYPE_CHECKING:
    from datetime import datetime

    from shipyard.rollout.rollouts import Rollout, State

__all__ = ["RolloutWrites", "arms_at"]


class RolloutWrites:
    """Write a transition's rows.

    Args:
        deployments: the deployments (their arms are written through it).
        settings: which aliases are protected, and the gates policy.
        actor: who acts, for the history and the change log.
    """

    def __init__(self, deployments: Deployments, settings: Settings, actor: str) -> None:
        self.deployments = deployments
        self.settings = settings
        self.actor = actor

    def move(
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
        self.log(
            conn, rollout_id, found, kind, step=step, detail=detail | {"arms": [a.to_dict() for a in arms]}
        )

    def move_alias(self, conn: Connection, rollout: Rollout, found: Deployment) -> None:
        """Move the deployment's alias to the new version, through the gates (`GateError` undoes all)."""
        if found.alias is None or not rollout.plan.promote_alias:
            return
        row = resolve(conn, ModelRef(found.model, version=rollout.version))
        detail = judge_alias_move(conn, self.settings, row, found.alias, force=False, reason=None)
        self._point_alias(conn, rollout, found, row, detail)

    def restore_alias(self, conn: Connection, rollout: Rollout, found: Deployment) -> None:
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

    def set(
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
        """Change the rollout's row: its state, step, reason, or that it finished."""
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

    def log(
        self,
        conn: Connection,
        rollout_id: int,
        found: Deployment,
        kind: str,
        *,
        step: int,
        detail: dict[str, Any],
    ) -> None:
        """Append a history entry of the rollout and its change-log entry."""
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


def arms_at(plan: Plan, step: int, *, new: int, old: int) -> list[Arm]:
    """The deployment's arms at `step` of `plan`."""
    if plan.strategy == "canary":
        weight = plan.steps[step]  # below 100: passing the last such step promotes
        return [Arm(old, "stable", 100.0 - weight), Arm(new, "canary", weight)]
    if plan.strategy == "blue-green":
        if step == 0:  # loaded and warmed, answering only the preview
            return [Arm(old, "stable", 100.0), Arm(new, "canary", 0.0)]
        return [Arm(new, "stable", 100.0), Arm(old, "canary", 0.0)]  # the old one kept warm
    return [Arm(old, "stable", 100.0), Arm(new, "shadow", plan.shadow_share)]
