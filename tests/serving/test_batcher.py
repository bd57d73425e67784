"""The adaptive batcher: a lone request never waits, calls stay within their rows, and a model
call that raises fails its own requests only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from shipyard.serving.batcher import AdaptiveBatcher


@dataclass(eq=False)
class Job:
    """A queued request as the batcher sees it, answered through its future."""

    name: str
    n_rows: int = 1
    future: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


def test_a_call_that_raises_fails_its_requests_and_the_next_calls_go_on() -> None:
    calls: list[list[str]] = []

    def run(jobs: Sequence[Job]) -> None:
        calls.append([j.name for j in jobs])
        jobs[0].future.set_result("answered before the failure")
        if any(j.name == "poison" for j in jobs):
            raise TypeError("unhashable type: 'dict'")
        for job in jobs[1:]:
            job.future.set_result(f"answer to {job.name}")

    async def scenario() -> list[object]:
        batcher: AdaptiveBatcher[Job] = AdaptiveBatcher(run, max_batch_rows=3, max_wait_ms=0)
        first = [Job("a"), Job("poison"), Job("b")]
        later = [Job("c"), Job("d")]  # beyond max_batch_rows: the next call, after the failure
        for job in (*first, *later):
            batcher.submit(job)
        futures = [j.future for j in (*first, *later)]
        return await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout=5)

    results = asyncio.run(scenario())
    assert calls == [["a", "poison", "b"], ["c", "d"]]
    assert results[0] == "answered before the failure"
    for failed in results[1:3]:
        assert isinstance(failed, TypeError)
    assert results[3:] == ["answered before the failure", "answer to d"]


def answering(calls: list[list[str]]) -> Callable[[Sequence[Job]], None]:
    """A model call that records the requests it took and answers each with its name."""

    def run(jobs: Sequence[Job]) -> None:
        calls.append([j.name for j in jobs])
        for job in jobs:
            job.future.set_result(job.name)

    return run


def test_a_lone_request_is_run_on_the_next_turn_and_calls_never_pass_max_batch_rows() -> None:
    calls: list[list[str]] = []
    run = answering(calls)

    async def scenario() -> None:
        batcher: AdaptiveBatcher[Job] = AdaptiveBatcher(run, max_batch_rows=4, max_wait_ms=5000)
        lone = Job("lone")
        batcher.submit(lone)
        await asyncio.wait_for(lone.future, timeout=1)  # well inside max_wait_ms: it never waited
        queued = [Job("a", 2), Job("b", 2), Job("c", 1), Job("big", 9)]
        for job in queued:
            batcher.submit(job)
        await asyncio.wait_for(asyncio.gather(*(j.future for j in queued)), timeout=5)

    asyncio.run(scenario())
    assert calls == [["lone"], ["a", "b"], ["c"], ["big"]]  # a request over the limit runs alone


def test_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch_rows is 0; expected at least 1"):
        AdaptiveBatcher(lambda jobs: None, max_batch_rows=0, max_wait_ms=1)
    with pytest.raises(ValueError, match="max_wait_ms is -1; expected 0 or more"):
        AdaptiveBatcher(lambda jobs: None, max_batch_rows=1, max_wait_ms=-1)
