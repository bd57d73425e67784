"""Batch jobs in the metadata store: what a job scores, which units it finished, how it ended.

A job is created with its inputs (each file's size and fingerprint), its output and its options.
Each finished unit (a Parquet row group, or a fixed number of CSV/JSON Lines rows) is recorded
after its output part was renamed into place, in one transaction; a resumed job skips the units
recorded and redoes any other, whose part it overwrites under the same name. So every input row
is written exactly once, whenever the job was killed.

`Jobs` checks each of its actions against its context's principal: reading jobs needs
`Action.READ`; starting, resuming and advancing a job need `Action.PREDICT` on its model.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, func, insert, select, update

from shipyard.batch.sources import Source
from shipyard.errors import ConflictError, NotFoundError
from shipyard.security.access import Action
from shipyard.security.context import Context, HasContext, context_of
from shipyard.store.holders import alive, this_process
from shipyard.store.metadata import as_utc, utcnow
from shipyard.store.schema import batch_jobs, batch_units

__all__ = ["Job", "JobState", "Jobs", "UnitDone"]

JobState = Literal["running", "succeeded", "failed"]


@dataclass(frozen=True)
class UnitDone:
    """One finished unit: its rows in, scored and rejected."""

    source: int
    unit: int
    rows: int
    scored: int
    rejected: int


@dataclass(frozen=True)
class Job:
    """A batch job as stored."""

    id: str
    ref: str
    model: str
    version: int
    sources: tuple[Source, ...]
    output: str
    options: Mapping[str, Any]
    state: JobState
    holder: str
    rows: int
    scored: int
    rejected: int
    units_done: int
    error: str | None
    actor: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    done: Mapping[int, frozenset[int]] = field(default_factory=dict)  # source -> units finished

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON-safe data."""
        return {
            "id": self.id,
            "ref": self.ref,
            "model": self.model,
            "version": self.version,
            "inputs": [s.url for s in self.sources],
            "output": self.output,
            "options": dict(self.options),
            "state": self.state,
            "holder": self.holder,
            "rows": self.rows,
            "scored": self.scored,
            "rejected": self.rejected,
            "units_done": self.units_done,
            "error": self.error,
            "actor": self.actor,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


class Jobs:
    """Create, advance, finish and read batch jobs.

    Args:
        context: the metadata store and who acts; each method checks the principal's role (a
            refusal is written to the audit log), and the actor is recorded with the jobs it starts;
            or anything holding one, such as a `Registry`.
    """

    def __init__(self, context: Context | HasContext) -> None:
        self.context = context_of(context)

    def create(
        self,
        *,
        ref: str,
        model: str,
        version: int,
        sources: Sequence[Source],
        output: str,
        options: Mapping[str, Any],
    ) -> Job:
        """A new running job, held by this process.

        Raises:
            PermissionDeniedError: the principal may not predict with `model`.
        """
        self.context.allow(Action.PREDICT, model)
        job_id = f"b-{uuid.uuid4().hex[:12]}"
        now = utcnow()
        self.context.meta.write(
            lambda conn: conn.execute(
                insert(batch_jobs).values(
                    id=job_id,
                    ref=ref,
                    model=model,
                    version=version,
                    inputs=[s.to_dict() for s in sources],
                    output=output,
                    options=dict(options),
                    state="running",
                    holder=this_process(),
                    error=None,
                    actor=self.context.actor,
                    created_at=now,
                    updated_at=now,
                    finished_at=None,
                )
            )
        )
        return self._get(job_id)

    def get(self, job_id: str) -> Job:
        """The job `job_id` with its finished units.

        Raises:
            NotFoundError: there is none.
            PermissionDeniedError: the principal may not read.
        """
        self.context.allow(Action.READ)
        return self._get(job_id)

    def _get(self, job_id: str) -> Job:
        with self.context.meta.read() as conn:
            row = conn.execute(select(batch_jobs).where(batch_jobs.c.id == job_id)).first()
            if row is None:
                raise NotFoundError(f"no batch job {job_id!r}; 'shipyard batch list' shows the jobs")
            units = conn.execute(select(batch_units).where(batch_units.c.job_id == job_id)).all()
        return _job(row, units)

    def list(self, *, limit: int = 50) -> list[Job]:
        """The newest jobs first (without their units).

        Raises:
            PermissionDeniedError: the principal may not read.
        """
        self.context.allow(Action.READ)
        with self.context.meta.read() as conn:
            rows = conn.execute(
                select(batch_jobs).order_by(batch_jobs.c.created_at.desc()).limit(limit)
            ).all()
            totals = {
                r.job_id: r
                for r in conn.execute(
                    select(
                        batch_units.c.job_id,
                        func.count().label("units"),
                        func.sum(batch_units.c.rows).label("rows"),
                        func.sum(batch_units.c.scored).label("scored"),
                        func.sum(batch_units.c.rejected).label("rejected"),
                    )
                    .where(batch_units.c.job_id.in_([r.id for r in rows]))
                    .group_by(batch_units.c.job_id)
                ).all()
            }
        return [_job(r, [], totals.get(r.id)) for r in rows]

    def claim(self, job_id: str) -> Job:
        """Take a job over to resume it: it must not be running in a live process.

        Raises:
            NotFoundError: there is no such job.
            PermissionDeniedError: the principal may not predict with the job's model.
            ConflictError: it succeeded already, or a live process on this host still runs it.
        """
        self.context.allow(Action.PREDICT, self._get(job_id).model)

        def change(conn: Connection) -> None:
            row = conn.execute(select(batch_jobs).where(batch_jobs.c.id == job_id)).first()
            if row is None:
                raise NotFoundError(f"no batch job {job_id!r}; 'shipyard batch list' shows the jobs")
            if row.state == "succeeded":
                raise ConflictError(f"batch job {job_id} succeeded already; nothing to resume")
            if row.state == "running" and alive(row.holder):
                raise ConflictError(
                    f"batch job {job_id} is running in process {row.holder}; stop it first, or wait"
                )
            conn.execute(
                update(batch_jobs)
                .where(batch_jobs.c.id == job_id)
                .values(
                    state="running", holder=this_process(), error=None, updated_at=utcnow(), finished_at=None
                )
            )

        self.context.meta.write(change)
        return self._get(job_id)

    def unit_done(self, job: Job, done: UnitDone) -> None:
        """Record a unit of `job` whose output is in place (one transaction; a redone unit
        replaces itself).

        Raises:
            PermissionDeniedError: the principal may not predict with the job's model.
        """
        self.context.allow(Action.PREDICT, job.model)
        job_id = job.id

        def change(conn: Connection) -> None:
            key = (
                (batch_units.c.job_id == job_id)
                & (batch_units.c.source == done.source)
                & (batch_units.c.unit == done.unit)
            )
            values = {
                "rows": done.rows,
                "scored": done.scored,
                "rejected": done.rejected,
                "done_at": utcnow(),
            }
            if conn.execute(update(batch_units).where(key).values(**values)).rowcount == 0:
                conn.execute(
                    insert(batch_units).values(job_id=job_id, source=done.source, unit=done.unit, **values)
                )
            conn.execute(update(batch_jobs).where(batch_jobs.c.id == job_id).values(updated_at=utcnow()))

        self.context.meta.write(change)

    def finish(self, job: Job, state: JobState, error: str | None = None) -> Job:
        """End `job` as succeeded or failed (with the reason); returns it as ended.

        Raises:
            PermissionDeniedError: the principal may not predict with the job's model.
        """
        self.context.allow(Action.PREDICT, job.model)
        now = utcnow()
        self.context.meta.write(
            lambda conn: conn.execute(
                update(batch_jobs)
                .where(batch_jobs.c.id == job.id)
                .values(state=state, error=error, updated_at=now, finished_at=now)
            )
        )
        return self._get(job.id)


def _job(row: Any, units: Sequence[Any], totals: Any = None) -> Job:
    done: dict[int, set[int]] = {}
    for u in units:
        done.setdefault(int(u.source), set()).add(int(u.unit))
    if totals is None:
        counts = (
            len(units),
            sum(u.rows for u in units),
            sum(u.scored for u in units),
            sum(u.rejected for u in units),
        )
    else:
        counts = (
            int(totals.units),
            int(totals.rows or 0),
            int(totals.scored or 0),
            int(totals.rejected or 0),
        )
    return Job(
        id=row.id,
        ref=row.ref,
        model=row.model,
        version=int(row.version),
        sources=tuple(Source.from_dict(s) for s in row.inputs),
        output=row.output,
        options=row.options,
        state=row.state,
        holder=row.holder,
        rows=counts[1],
        scored=counts[2],
        rejected=counts[3],
        units_done=counts[0],
        error=row.error,
        actor=row.actor,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        finished_at=as_utc(row.finished_at) if row.finished_at is not None else None,
        done={k: frozenset(v) for k, v in done.items()},
    )
