"""Deployments: named endpoints whose arms (versions with a role and a weight) serving follows.

A deployment serves one model. Its stable arm answers most requests; during a rollout a canary
arm takes a share of them, or a shadow arm gets copies. Every change is one transaction that
bumps the deployment's `generation`, so each serving replica notices it with a one-row read and
loads what the new arms need.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Row, delete, insert, select, update

from shipyard.core.contract import Contract
from shipyard.core.refs import ModelRef, check_name
from shipyard.errors import DeploymentNotFoundError, RolloutConflictError, RolloutError
from shipyard.registry.queries import read_version, record_change, resolve
from shipyard.registry.records import LIVE, ModelVersion
from shipyard.security.access import Action
from shipyard.security.context import Context, HasContext, context_of
from shipyard.store.metadata import as_utc, utcnow
from shipyard.store.schema import deployment_arms, deployments, rollouts

__all__ = ["Arm", "Deployment", "Deployments", "Role", "check_arms", "check_sticky", "compatible"]

Role = Literal["stable", "canary", "shadow"]
ROLES: tuple[Role, ...] = ("stable", "canary", "shadow")
_STICKY_KINDS = ("header", "feature")
DEFAULT_STICKY_HEADER = "X-Shipyard-Key"


@dataclass(frozen=True)
class Arm:
    """One version a deployment serves.

    Args:
        version: the model version.
        role: 'stable' (answers by default), 'canary' (answers a share), 'shadow' (gets copies).
        weight: percent of requests: stable and canary add up to 100; a shadow's weight is the
            share of requests copied to it.
    """

    version: int
    role: Role
    weight: float

    def to_dict(self) -> dict[str, Any]:
        """The arm as JSON-safe data."""
        return {"version": self.version, "role": self.role, "weight": self.weight}

    def __str__(self) -> str:
        return f"{self.role} {self.version} ({self.weight:g}%)"


@dataclass(frozen=True)
class Deployment:
    """A named endpoint and its arms.

    Args:
        name: the endpoint's name (`/v1/models/NAME/predict`).
        model: the registered model every arm is a version of.
        alias: the alias the deployment follows and a promotion moves, or None.
        arms: the arms, stable first.
        sticky: where the routing key comes from: 'header:NAME' or 'feature:NAME'.
        generation: grows with every change.
    """

    name: str
    model: str
    alias: str | None
    arms: tuple[Arm, ...]
    sticky: str
    generation: int
    created_at: datetime
    updated_at: datetime

    @property
    def stable(self) -> Arm:
        """The arm that answers when no other does."""
        return next(a for a in self.arms if a.role == "stable")

    def arm(self, role: Role) -> Arm | None:
        """The arm of `role`, or None."""
        return next((a for a in self.arms if a.role == role), None)

    def ref(self, arm: Arm) -> ModelRef:
        """`MODEL:VERSION` of an arm."""
        return ModelRef(self.model, version=arm.version)

    def to_dict(self) -> dict[str, Any]:
        """The deployment as JSON-safe data."""
        return {
            "name": self.name,
            "model": self.model,
            "alias": self.alias,
            "arms": [a.to_dict() for a in self.arms],
            "sticky": self.sticky,
            "generation": self.generation,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def check_sticky(sticky: str | None) -> str:
    """`sticky` as 'header:NAME' or 'feature:NAME' (the default header when None).

    Raises:
        RolloutError: it is neither.
    """
    if sticky is None:
        return f"header:{DEFAULT_STICKY_HEADER}"
    kind, _, name = sticky.partition(":")
    if kind not in _STICKY_KINDS or not name.strip():
        raise RolloutError(
            f"sticky routing key {sticky!r} is not understood; expected 'header:NAME' "
            f"(e.g. 'header:{DEFAULT_STICKY_HEADER}') or 'feature:NAME' (e.g. 'feature:customer_id')"
        )
    return f"{kind}:{name.strip()}"


def check_arms(arms: Sequence[Arm], *, where: str) -> tuple[Arm, ...]:
    """The arms, stable first, if they make a deployment; else a clear error.

    One stable arm, at most one canary and one shadow, each version once; stable and canary
    weights between 0 and 100 adding up to 100; a shadow's share above 0 and at most 100.

    Raises:
        RolloutError: they do not.
    """
    roles = [a.role for a in arms]
    for arm in arms:
        if arm.role not in ROLES:
            raise RolloutError(f"{where}: arm role {arm.role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(arm.weight, int | float) or not math.isfinite(arm.weight):
            raise RolloutError(
                f"{where}: the weight of version {arm.version} is {arm.weight!r}; expected a number"
            )
    if roles.count("stable") != 1:
        raise RolloutError(f"{where}: a deployment needs exactly one stable arm; got {roles.count('stable')}")
    for role in ("canary", "shadow"):
        if roles.count(role) > 1:
            raise RolloutError(f"{where}: at most one {role} arm; got {roles.count(role)}")
    versions = [a.version for a in arms]
    if len(set(versions)) != len(versions):
        raise RolloutError(f"{where}: each version may be one arm only; got versions {versions}")
    serving = [a for a in arms if a.role != "shadow"]
    for arm in serving:
        if not 0 <= arm.weight <= 100:
            raise RolloutError(
                f"{where}: the {arm.role} arm's weight is {arm.weight:g}; expected a percent from 0 to 100"
            )
    total = sum(a.weight for a in serving)
    if abs(total - 100) > 1e-9:
        shown = " + ".join(f"{a.role} {a.weight:g}" for a in serving)
        raise RolloutError(f"{where}: stable and canary weights must add up to 100; got {shown} = {total:g}")
    for arm in arms:
        if arm.role == "shadow" and not 0 < arm.weight <= 100:
            raise RolloutError(
                f"{where}: the shadow arm copies {arm.weight:g}% of requests; "
                "expected above 0 and at most 100"
            )
    order = {role: i for i, role in enumerate(ROLES)}
    return tuple(sorted(arms, key=lambda a: order[a.role]))


def compatible(stable: Contract, other: Contract) -> list[str]:
    """Why `other` cannot answer the requests `stable` answers (empty when it can)."""
    problems = []
    mine = {f.name: f for f in stable.features}
    theirs = {f.name: f for f in other.features}
    missing = [n for n in mine if n not in theirs]
    extra = [n for n in theirs if n not in mine]
    if missing:
        problems.append(f"it lacks the features {missing}")
    if extra:
        problems.append(f"it needs features the deployment's requests do not carry: {extra}")
    for name in mine.keys() & theirs.keys():
        if mine[name].dtype != theirs[name].dtype:
            problems.append(
                f"feature {name!r} is {theirs[name].dtype.value}, not {mine[name].dtype.value} as now"
            )
    if stable.task != other.task:
        problems.append(f"it is a {other.task} model, not {stable.task}")
    return problems


class Deployments:
    """Create, read and change deployments, in the registry's metadata store.

    Args:
        context: who acts (each action is checked on the deployment's model), and the metadata
            store; or anything holding one, such as the `Registry` whose models are served.
    """

    def __init__(self, context: Context | HasContext) -> None:
        self.context = context_of(context)
        self.meta = self.context.meta

    def create(self, name: str, model: str | ModelRef, *, sticky: str | None = None) -> Deployment:
        """A new deployment of one stable arm: the version `model` names now.

        With an alias (`fraud@production`), the deployment remembers it: a promotion moves it.

        Raises:
            RolloutConflictError: a deployment of that name exists.
            NotFoundError: no such model version.
            ConflictError: the version is archived.
        """
        check_name(name)
        ref = model if isinstance(model, ModelRef) else ModelRef.parse(model)
        key = check_sticky(sticky)
        self.context.allow(Action.DEPLOY, ref.name)

        def change(conn: Connection) -> None:
            if conn.execute(select(deployments.c.id).where(deployments.c.name == name)).first():
                raise RolloutConflictError(
                    f"a deployment named {name!r} exists; pick another name or change it with "
                    f"'shipyard rollout start {name} ...'"
                )
            version = self._live_version(conn, ref)
            now = utcnow()
            deployment_id = conn.execute(
                insert(deployments)
                .values(
                    name=name,
                    model=ref.name,
                    alias=ref.alias,
                    sticky=key,
                    generation=1,
                    created_at=now,
                    updated_at=now,
                )
                .returning(deployments.c.id)
            ).scalar_one()
            conn.execute(
                insert(deployment_arms).values(
                    deployment_id=deployment_id, version=version.version, role="stable", weight=100.0
                )
            )
            self._record(
                conn, "deployment.create", ref.name, version.version, {"deployment": name, "from": str(ref)}
            )

        self.meta.write(change)
        return self.get(name)

    def get(self, name: str) -> Deployment:
        """The deployment `name`.

        Raises:
            DeploymentNotFoundError: there is none.
        """
        with self.meta.read() as conn:
            found = self.read(conn, name)
        self.context.allow(Action.READ, found.model)
        return found

    def generation(self, name: str) -> int:
        """The deployment's generation: a cheap way to notice that it changed.

        Raises:
            PermissionDeniedError: the principal may not read.
            DeploymentNotFoundError: there is no such deployment.
        """
        self.context.allow(Action.READ)
        with self.meta.read() as conn:
            found = conn.execute(select(deployments.c.generation).where(deployments.c.name == name)).scalar()
            if found is None:
                raise DeploymentNotFoundError(self._unknown(conn, name))
            return int(found)

    def list(self) -> list[Deployment]:
        """Every deployment, by name."""
        self.context.allow(Action.READ)
        with self.meta.read() as conn:
            names = conn.execute(select(deployments.c.name).order_by(deployments.c.name)).scalars().all()
            found = [self.read(conn, n) for n in names]
        return [d for d in found if self.context.principal.sees(d.model)]

    def delete(self, name: str) -> None:
        """Delete a deployment that no rollout is running on.

        Raises:
            DeploymentNotFoundError: there is none.
            RolloutConflictError: a rollout is running on it.
        """
        self.context.allow(Action.DEPLOY, self.get(name).model)

        def change(conn: Connection) -> None:
            found = self.read(conn, name)
            row = self.row(conn, name)
            if conn.execute(select(rollouts.c.id).where(rollouts.c.active == row.id)).first():
                raise RolloutConflictError(
                    f"a rollout is running on {name!r}; abort it first with 'shipyard rollout abort {name}'"
                )
            conn.execute(delete(deployments).where(deployments.c.id == row.id))
            self._record(conn, "deployment.delete", found.model, found.stable.version, {"deployment": name})

        self.meta.write(change)

    def set_arms(self, name: str, arms: Sequence[Arm], *, reason: str) -> Deployment:
        """Replace the deployment's arms (one transaction), checked as `check_arms` and `check_version` do.

        Raises:
            DeploymentNotFoundError: there is no such deployment.
            RolloutError: the arms do not make a deployment or a version cannot serve its requests.
        """
        self.context.allow(Action.DEPLOY, self.get(name).model)
        self.meta.write(lambda conn: self.write_arms(conn, name, arms, reason=reason))
        return self.get(name)

    # -- inside a caller's transaction ------------------------------------------------------------
    def read(self, conn: Connection, name: str) -> Deployment:
        """The deployment `name`, in the caller's transaction.

        Raises:
            DeploymentNotFoundError: there is none.
        """
        row = self.row(conn, name)
        arms = conn.execute(
            select(deployment_arms.c.version, deployment_arms.c.role, deployment_arms.c.weight).where(
                deployment_arms.c.deployment_id == row.id
            )
        ).all()
        order = {role: i for i, role in enumerate(ROLES)}
        return Deployment(
            name=row.name,
            model=row.model,
            alias=row.alias,
            arms=tuple(
                sorted(
                    (Arm(int(a.version), a.role, float(a.weight)) for a in arms), key=lambda a: order[a.role]
                )
            ),
            sticky=row.sticky or f"header:{DEFAULT_STICKY_HEADER}",
            generation=int(row.generation),
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
        )

    def write_arms(self, conn: Connection, name: str, arms: Sequence[Arm], *, reason: str) -> Deployment:
        """Replace the arms in the caller's transaction; returns the deployment as it becomes."""
        current = self.read(conn, name)
        checked = check_arms(arms, where=f"deployment {name!r}")
        stable = self.check_version(conn, current, next(a for a in checked if a.role == "stable").version)
        for arm in checked:
            if arm.role != "stable":
                self.check_version(conn, current, arm.version, against=stable)
        row = self.row(conn, name)
        conn.execute(delete(deployment_arms).where(deployment_arms.c.deployment_id == row.id))
        conn.execute(
            insert(deployment_arms),
            [
                {"deployment_id": row.id, "version": a.version, "role": a.role, "weight": float(a.weight)}
                for a in checked
            ],
        )
        now = utcnow()
        conn.execute(
            update(deployments)
            .where(deployments.c.id == row.id)
            .values(generation=deployments.c.generation + 1, updated_at=now)
        )
        self._record(
            conn,
            "deployment.arms",
            current.model,
            stable.version,
            {"deployment": name, "arms": [a.to_dict() for a in checked], "reason": reason},
        )
        return replace(current, arms=checked, generation=current.generation + 1, updated_at=now)

    def check_version(
        self, conn: Connection, deployment: Deployment, version: int, *, against: ModelVersion | None = None
    ) -> ModelVersion:
        """The live version `version` of the deployment's model, checked to answer its requests.

        Raises:
            NotFoundError: no such version.
            RolloutError: it is archived, or its contract differs from `against` (the stable arm's).
        """
        found = self._live_version(conn, ModelRef(deployment.model, version=version))
        if against is not None:
            problems = compatible(against.contract, found.contract)
            if problems:
                raise RolloutError(
                    f"{found.ref} cannot serve deployment {deployment.name!r} beside {against.ref}: "
                    + "; ".join(problems)
                    + ". Register a version with the same features, or create a new deployment for it"
                )
        return found

    def _live_version(self, conn: Connection, ref: ModelRef) -> ModelVersion:
        row = resolve(conn, ref)
        if row.status != LIVE:
            raise RolloutError(
                f"{row.name}:{row.version} is archived; an archived version cannot be deployed. "
                "Pick a live version"
            )
        return read_version(conn, row)

    def row(self, conn: Connection, name: str) -> Row[Any]:
        """The deployment's table row, in the caller's transaction.

        Raises:
            DeploymentNotFoundError: there is none.
        """
        row = conn.execute(select(deployments).where(deployments.c.name == name)).first()
        if row is None:
            raise DeploymentNotFoundError(self._unknown(conn, name))
        return row

    def _unknown(self, conn: Connection, name: str) -> str:
        known = conn.execute(select(deployments.c.name).order_by(deployments.c.name)).scalars().all()
        shown = (
            ", ".join(known)
            if known
            else "none yet; create one with 'shipyard deploy create NAME --model REF'"
        )
        return f"no deployment named {name!r}; deployments: {shown}"

    def _record(
        self, conn: Connection, action: str, model: str, version: int | None, detail: dict[str, Any]
    ) -> None:
        record_change(conn, action, actor=self.context.actor, model=model, version=version, detail=detail)
