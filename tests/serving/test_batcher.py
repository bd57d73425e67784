"""The adaptive batcher: a model call that raises fails its own requests, and only those."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from shipyard.serving.batcher import AdaptiveBatcher


@dataclass(eq=False)
class Job:
    """A queued request as the batcher sees it, answered through its future."""

    name: str
    n_rows: int = 1
    trickles: bool = False
    company: int = 0
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
