"""Adaptive batching: requests that queue while the model is busy share one model call.

The batcher runs on the worker's event loop. A request that finds the model idle is predicted on
the next turn of the loop, so a lone client pays nothing for batching. While a model call runs,
the loop does nothing else; requests that arrive meanwhile are read on the next turn and merged
into one call, up to `max_batch_rows` rows.

The batcher also watches the load: when requests arrive faster than one model call takes (a
moving average of both), a queue is held up to `max_wait_ms` (never longer than one model call)
for more requests, closing early once it holds `max_batch_rows`. A lone client's requests arrive
slower than a call, so it never waits. Both transports submit every request of one read in the
same turn (REST through uvicorn, gRPC through its own HTTP/2 server), so what is queued shows
the load.

A model call that raises fails the requests of that call and nothing else: each one still
waiting is failed with the error (`Queued.fail`), the error is logged, and the loop goes on with
the next queue. A request is never left without an answer, whatever `run` does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

__all__ = ["AdaptiveBatcher", "Queued"]

log = logging.getLogger("shipyard.serve")


class Queued(Protocol):
    """What the batcher needs of a queued request: its row count, and how to fail it."""

    @property
    def n_rows(self) -> int: ...

    def fail(self, error: BaseException) -> None:
        """Answer the request with `error`, unless it was answered already."""
        ...


J = TypeVar("J", bound=Queued)


class AdaptiveBatcher(Generic[J]):
    """Gather queued requests into model calls.

    Args:
        run: called with the requests of one model call; it answers each of them itself. When it
            raises, every request of the call it left unanswered is failed with the error.
        max_batch_rows: the most rows one call may take (a single larger request runs alone).
        max_wait_ms: how long a queue may wait for more requests while the server is under load;
            0 never waits.
    """

    def __init__(
        self, run: Callable[[Sequence[J]], None], *, max_batch_rows: int, max_wait_ms: float
    ) -> None:
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows is {max_batch_rows}; expected at least 1")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms is {max_wait_ms}; expected 0 or more")
        self._run = run
        self.max_batch_rows = max_batch_rows
        self.max_wait = max_wait_ms / 1000.0
        self._queue: deque[J] = deque()
        self._rows = 0
        self._handle: asyncio.Handle | asyncio.TimerHandle | None = None
        self._waiting = False
        self._last_arrival = 0.0
        self._gap = 1.0  # moving average of the time between arrivals, in seconds
        self._call = 0.0  # moving average of one model call, in seconds
        self.calls = 0

    @property
    def queued(self) -> int:
        """Requests waiting for a model call."""
        return len(self._queue)

    def submit(self, job: J) -> None:
        """Queue one request; it is answered by `run` on a later turn of the loop."""
        now = time.perf_counter()
        gap = now - self._last_arrival
        self._gap = 0.8 * self._gap + 0.2 * gap
        self._last_arrival = now
        self._queue.append(job)
        self._rows += job.n_rows
        if self._handle is None:
            loop = asyncio.get_running_loop()
            # Under load (arrivals come faster than calls), wait up to one call for company.
            if self.max_wait and self._gap < self._call and self._rows < self.max_batch_rows:
                self._waiting = True
                self._handle = loop.call_later(min(self.max_wait, self._call), self._flush)
            else:
                self._handle = loop.call_soon(self._flush)
        elif self._waiting and self._rows >= self.max_batch_rows:
            self._handle.cancel()
            self._waiting = False
            self._handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._handle = None
        self._waiting = False
        if not self._queue:
            return
        jobs = [self._queue.popleft()]
        rows = jobs[0].n_rows
        while self._queue and rows + self._queue[0].n_rows <= self.max_batch_rows:
            job = self._queue.popleft()
            rows += job.n_rows
            jobs.append(job)
        self._rows -= rows
        self.calls += 1
        started = time.perf_counter()
        try:
            self._run(jobs)
        except BaseException as exc:
            # `run` answers its requests itself; when it raises, the ones it left would wait for
            # ever (their callers holding their bodies and the in-flight count), so fail them.
            log.error(
                "a model call of %d request(s) failed; answering them with its error", len(jobs), exc_info=exc
            )
            for job in jobs:
                job.fail(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._call = 0.8 * self._call + 0.2 * (time.perf_counter() - started)
            if self._queue and self._handle is None:
                self._handle = asyncio.get_running_loop().call_soon(self._flush)
