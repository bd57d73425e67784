"""Evaluations and gate results stored on versions, and the guard of protected aliases.

A protected alias (`production` by default, `Settings.protected_aliases`) moves only to a version
whose newest gate result for that alias passed, was checked against the version the alias points
at now (a result against an older champion is stale), and, when `Settings.gates_policy` names a
policy file, was checked against that very policy. `force` moves it anyway and records who and why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, and_, insert, select

from shipyard.core.refs import ModelRef
from shipyard.errors import ConfigError, GateError, NotFoundError
from shipyard.registry.queries import as_ref, no_model, record_change, resolve
from shipyard.registry.records import EvaluationRecord, GateRecord
from shipyard.security.access import Action
from shipyard.security.context import Context
from shipyard.store.metadata import as_utc, utcnow
from shipyard.store.schema import aliases, evaluations, gate_results, model_versions, models

if TYPE_CHECKING:
    from shipyard.config import Settings

__all__ = ["Results", "alias_holder", "judge_alias_move", "lock_model", "policy_digest", "promotion_problem"]


class Results:
    """The evaluations and gate results of a registry's versions (`Registry.results`).

    Args:
        context: who acts (each result records its actor), and the metadata store.
    """

    def __init__(self, context: Context) -> None:
        self.context = context

    def add_evaluation(
        self,
        ref: str | ModelRef,
        *,
        data_fingerprint: str,
        rows: int,
        body: Mapping[str, Any],
        champion: tuple[str | ModelRef, Mapping[str, Any]] | None = None,
    ) -> tuple[EvaluationRecord, EvaluationRecord | None]:
        """Store an evaluation of the version `ref` names and, in the same transaction, its champion's.

        Args:
            ref: the version evaluated.
            data_fingerprint: the SHA-256 of the rows.
            rows: how many rows.
            body: the evaluation.
            champion: the champion's version and evaluation on the same rows; its id is written
                into `body['champion_ref']['id']`.

        Returns:
            The stored evaluation, and the champion's when given.
        """
        parsed = as_ref(ref)
        rival = None if champion is None else (as_ref(champion[0]), dict(champion[1]))
        actor = self.context.actor
        self.context.allow(Action.EVALUATE, parsed.name)

        def insert_one(conn: Connection, target: ModelRef, content: dict[str, Any]) -> int:
            row = resolve(conn, target)
            new_id = conn.execute(
                insert(evaluations)
                .values(
                    model_id=row.model_id,
                    version=row.version,
                    created_at=utcnow(),
                    actor=actor,
                    data_fingerprint=data_fingerprint,
                    rows=rows,
                    body=content,
                )
                .returning(evaluations.c.id)
            ).scalar_one()
            detail = {"evaluation": new_id, "rows": rows}
            record_change(conn, "evaluate", actor=actor, model=row.name, version=row.version, detail=detail)
            return int(new_id)

        def change(conn: Connection) -> tuple[int, int | None]:
            content = dict(body)
            rival_id = None
            if rival is not None:
                rival_id = insert_one(conn, rival[0], rival[1])
                content["champion_ref"] = dict(content.get("champion_ref") or {}) | {"id": rival_id}
            return insert_one(conn, parsed, content), rival_id

        new_id, rival_id = self.context.meta.write(change)
        return self._evaluation(new_id), None if rival_id is None else self._evaluation(rival_id)

    def evaluations(
        self, ref: str | ModelRef, *, data_fingerprint: str | None = None, limit: int = 20
    ) -> list[EvaluationRecord]:
        """The version's evaluations, newest first, optionally only those on one data set."""
        self.context.allow(Action.READ, as_ref(ref).name)
        with self.context.meta.read() as conn:
            row = resolve(conn, as_ref(ref))
            query = (
                _evaluation_query()
                .where(and_(evaluations.c.model_id == row.model_id, evaluations.c.version == row.version))
                .order_by(evaluations.c.id.desc())
                .limit(limit)
            )
            if data_fingerprint is not None:
                query = query.where(evaluations.c.data_fingerprint == data_fingerprint)
            return [_read_evaluation(r) for r in conn.execute(query)]

    def add_gate_result(
        self,
        ref: str | ModelRef,
        *,
        alias: str,
        champion_version: int | None,
        policy_digest: str,
        passed: bool,
        body: Mapping[str, Any],
    ) -> GateRecord:
        """Store a gate result on the version `ref` names."""
        parsed = as_ref(ref)
        self.context.allow(Action.EVALUATE, parsed.name)
        actor = self.context.actor

        def change(conn: Connection) -> int:
            row = resolve(conn, parsed)
            new_id = conn.execute(
                insert(gate_results)
                .values(
                    model_id=row.model_id,
                    version=row.version,
                    created_at=utcnow(),
                    actor=actor,
                    alias=alias,
                    champion_version=champion_version,
                    policy_digest=policy_digest,
                    passed=passed,
                    body=dict(body),
                )
                .returning(gate_results.c.id)
            ).scalar_one()
            detail = {"gate": new_id, "alias": alias, "passed": passed, "champion": champion_version}
            record_change(conn, "gates", actor=actor, model=row.name, version=row.version, detail=detail)
            return int(new_id)

        new_id = self.context.meta.write(change)
        return self.gate_results(parsed.name, gate_id=new_id)[0]

    def gate_results(
        self, ref: str | ModelRef, *, alias: str | None = None, gate_id: int | None = None, limit: int = 20
    ) -> list[GateRecord]:
        """Gate results, newest first: of the version `ref` names or, for a bare name, of every version.

        Raises:
            NotFoundError: no such model or version.
        """
        parsed = as_ref(ref)
        self.context.allow(Action.READ, parsed.name)
        query = _gate_query().order_by(gate_results.c.id.desc()).limit(limit)
        with self.context.meta.read() as conn:
            if gate_id is not None:
                query = query.where(gate_results.c.id == gate_id)
            elif parsed.is_latest:
                if conn.execute(select(models.c.id).where(models.c.name == parsed.name)).scalar() is None:
                    raise NotFoundError(no_model(conn, parsed.name))
                query = query.where(models.c.name == parsed.name)
            else:
                row = resolve(conn, parsed)
                query = query.where(
                    and_(gate_results.c.model_id == row.model_id, gate_results.c.version == row.version)
                )
            if alias is not None:
                query = query.where(gate_results.c.alias == alias)
            return [_read_gate(r) for r in conn.execute(query)]

    def _evaluation(self, evaluation_id: int) -> EvaluationRecord:
        with self.context.meta.read() as conn:
            row = conn.execute(_evaluation_query().where(evaluations.c.id == evaluation_id)).one()
            return _read_evaluation(row)


def alias_holder(conn: Connection, model_id: int, alias: str) -> int | None:
    """The version number an alias of a model points at, or None."""
    number = conn.execute(
        select(model_versions.c.version)
        .join(aliases, aliases.c.version_id == model_versions.c.id)
        .where(and_(aliases.c.model_id == model_id, aliases.c.alias == alias))
    ).scalar()
    return None if number is None else int(number)


def judge_alias_move(
    conn: Connection, settings: Settings, row: Row[Any], alias: str, *, force: bool, reason: str | None
) -> dict[str, Any]:
    """Whether `alias` may move to the version in `row`: the change log's detail, or `GateError`.

    For a protected alias the model's row is locked first, so concurrent moves are judged in turn.

    Raises:
        GateError: the alias is protected, the version has no passing, current gate result, and
            `force` is not set.
    """
    if alias in settings.protected_aliases:
        lock_model(conn, row.model_id)
    detail: dict[str, Any] = {"alias": alias, "from": alias_holder(conn, row.model_id, alias)}
    problem = promotion_problem(conn, settings, row, alias)
    if problem is None:
        return detail
    if not force:
        raise GateError(f"{alias!r} is a protected alias: {problem}")
    return detail | {"forced": True, "reason": reason, "overridden": problem}


def lock_model(conn: Connection, model_id: int) -> None:
    """Hold the model's row until the transaction ends, so that alias moves of it run one at a time.

    On PostgreSQL this is a row lock (`SELECT ... FOR UPDATE`): a second promotion waits, then
    sees the first one's alias and judges its gate result against it. SQLite's write transactions
    (`BEGIN IMMEDIATE`) are already serial, and SQLAlchemy leaves `FOR UPDATE` out there.
    """
    conn.execute(select(models.c.id).where(models.c.id == model_id).with_for_update())


def policy_digest(text: str) -> str:
    """The SHA-256 of a policy's text, which gate results record."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def promotion_problem(conn: Connection, settings: Settings, row: Row[Any], alias: str) -> str | None:
    """Why `alias` may not move to the version in `row`, or None when it may.

    Raises:
        ConfigError: `settings.gates_policy` names a file that cannot be read.
    """
    if alias not in settings.protected_aliases:
        return None
    ref = f"{row.name}:{row.version}"
    current = alias_holder(conn, row.model_id, alias)
    if current == row.version:
        return None
    newest = conn.execute(
        _gate_query()
        .where(
            and_(
                gate_results.c.model_id == row.model_id,
                gate_results.c.version == row.version,
                gate_results.c.alias == alias,
            )
        )
        .order_by(gate_results.c.id.desc())
        .limit(1)
    ).first()
    check = f"'shipyard gates check {ref} --policy gates.yaml'"
    if newest is None:
        return f"{ref} has no gate result for {alias!r}; run {check} first"
    gate = _read_gate(newest)
    when = f"{gate.created_at:%Y-%m-%d %H:%M} UTC by {gate.actor}"
    if not gate.passed:
        failed = [r.get("rule", "?") for r in gate.body.get("rules", []) if not r.get("passed")]
        return (
            f"the newest gate check of {ref} for {alias!r} ({when}) failed: {', '.join(failed[:5])}"
            "; fix the model, or move the alias anyway with --force and a reason"
        )
    if gate.champion_version != current:
        then = "no version" if gate.champion_version is None else f"{row.name}:{gate.champion_version}"
        now = "no version" if current is None else f"{row.name}:{current}"
        return (
            f"{ref} was checked ({when}) against {then} behind {alias!r}, but {alias!r} now points at "
            f"{now}; the result is stale, run {check} again"
        )
    if settings.gates_policy is not None:
        try:
            required = policy_digest(settings.gates_policy.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(
                f"SHIPYARD_GATES_POLICY is {str(settings.gates_policy)!r}, which cannot be read "
                f"({exc.strerror}); point it at the team's gates policy file"
            ) from None
        if gate.policy_digest != required:
            return (
                f"{ref} passed a policy other than the required {settings.gates_policy} "
                f"(SHIPYARD_GATES_POLICY); run 'shipyard gates check {ref}' with that policy"
            )
    return None


def _evaluation_query() -> Any:
    return select(evaluations, models.c.name).join(models, models.c.id == evaluations.c.model_id)


def _gate_query() -> Any:
    return select(gate_results, models.c.name).join(models, models.c.id == gate_results.c.model_id)


def _read_evaluation(row: Row[Any]) -> EvaluationRecord:
    return EvaluationRecord(
        id=row.id,
        name=row.name,
        version=row.version,
        created_at=as_utc(row.created_at),
        actor=row.actor,
        data_fingerprint=row.data_fingerprint,
        rows=row.rows,
        body=row.body,
    )


def _read_gate(row: Row[Any]) -> GateRecord:
    return GateRecord(
        id=row.id,
        name=row.name,
        version=row.version,
        created_at=as_utc(row.created_at),
        actor=row.actor,
        alias=row.alias,
        champion_version=row.champion_version,
        policy_digest=row.policy_digest,
        passed=bool(row.passed),
        body=row.body,
    )
