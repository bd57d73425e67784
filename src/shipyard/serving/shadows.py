"""Copies of answered requests for a deployment's shadow arm, predicted in the worker's idle time.

A copy is queued after the caller's answer is ready and never awaited: its answer goes to the
prediction log (protocol 'shadow', the caller's request id, logged when the caller's request is)
and nowhere else. Copies are predicted only while no caller's request waits for a model call, so
they use the worker's idle time; under sustained load they wait, and once `limit` wait, more are
shed and counted.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from shipyard.errors import ShipyardError
from shipyard.serving.merging import one_value_per_row
from shipyard.serving.metrics import Metrics
from shipyard.serving.served import Answer, Columns, Lane, Pending, ServedModel

__all__ = ["ShadowCopies"]


@dataclass(frozen=True, slots=True)
class _Copy:
    """A request's copy for a shadow arm."""

    served: ServedModel
    lane: Lane
    columns: Columns
    n_rows: int
    request_id: str
    logged: bool

    @property
    def labels(self) -> tuple[str, str, str]:
        return (*self.served.series, str(self.lane.loaded.version.version))


class ShadowCopies:
    """The copies of one worker's requests waiting for, or being predicted by, shadow arms.

    Args:
        models: the worker's served models (read, never changed: callers go first).
        metrics: where copies answered, failed and shed are counted.
        limit: copies waiting or being predicted at most; more are shed.
    """

    def __init__(self, models: Mapping[str, ServedModel], *, metrics: Metrics, limit: int) -> None:
        self.models = models
        self.metrics = metrics
        self.limit = limit
        self._copies: deque[_Copy] = deque()  # copies waiting for idle time
        self._due = False  # `_run` is scheduled
        self._running = 0  # copies being predicted

    def add(
        self,
        served: ServedModel,
        lane: Lane,
        columns: Columns,
        n_rows: int,
        *,
        request_id: str,
        logged: bool,
    ) -> None:
        """Queue a copy of an answered request for the shadow arm `lane`; shed it if too many wait."""
        copy = _Copy(served, lane, columns, n_rows, request_id, logged)
        if len(self._copies) + self._running >= self.limit:
            self.metrics.inc("shipyard_shadow_requests", (*copy.labels, "shed"))
            return
        self._copies.append(copy)
        if not self._due:
            self._due = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        loop = asyncio.get_running_loop()
        callers_wait = any(
            lane.batcher.queued
            for served in self.models.values()
            for version, lane in served.lanes.items()
            if served.router is None
            or served.router.shadow is None
            or served.router.shadow.version != version
        )
        if callers_wait:
            loop.call_later(0.001, self._run)  # callers first
            return
        self._due = False
        while self._copies:
            copy = self._copies.popleft()
            self._running += 1
            future: asyncio.Future[Answer] = loop.create_future()
            future.add_done_callback(functools.partial(self._answered, copy.labels))
            try:  # the shadow's contract reads the caller's columns, which may not suit it
                rows = one_value_per_row(copy.lane.loaded, copy.columns, copy.n_rows)
            except ShipyardError as exc:
                future.set_exception(exc)
                continue
            copy.lane.batcher.submit(
                Pending(
                    rows,
                    copy.n_rows,
                    copy.request_id,
                    "shadow",
                    time.perf_counter(),
                    copy.logged,
                    future,
                )
            )

    def _answered(self, labels: tuple[str, str, str], answered: asyncio.Future[Answer]) -> None:
        self._running -= 1
        failed = answered.cancelled() or answered.exception() is not None
        self.metrics.inc("shipyard_shadow_requests", (*labels, "failed" if failed else "answered"))
