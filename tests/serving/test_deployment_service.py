"""A deployment served in process: arms, sticky keys and pinned versions (shadow copies: test_shadows;
new arms for a served name: test_served)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from servers import credit_row
from shipyard.rollout.deployments import Arm
from shipyard.rollout.routing import point
from shipyard.serving.served import Answer
from shipyard.serving.service import ModelService

Serve = Callable[..., ModelService]  # the `serve` fixture: arms (and limits) to a warm service
Ask = Callable[..., Awaitable[Answer]]  # the `ask` fixture: one row, predicted by deployment `api`


def test_a_deployment_is_authorized_as_the_model_it_serves(serve: Serve) -> None:
    service = serve([Arm(1, "stable", 100.0)])
    assert service.model_of("api") == "credit"  # a key scoped to credit* may call 'api'
    assert service.model_of("elsewhere") == "elsewhere"
    assert service.model_of(None) is None


def test_a_feature_key_keeps_each_value_on_one_arm_with_the_canary_share(serve: Serve, ask: Ask) -> None:
    service = serve([Arm(1, "stable", 70.0), Arm(2, "canary", 30.0)])
    countries = ["DE", "FR", "ES", "IT", "NL"]

    async def run() -> dict[str, set[int]]:
        seen: dict[str, set[int]] = {}
        for i in range(100):
            country = countries[i % 5]
            answer = await ask(service, credit_row(country=country, age=20 + i % 50), f"r{i}")
            seen.setdefault(country, set()).add(answer.version.version)
        return seen

    seen = asyncio.run(run())
    assert all(len(v) == 1 for v in seen.values())
    expected = {c: 2 if point(c) < 30 else 1 for c in countries}
    assert {c: next(iter(v)) for c, v in seen.items()} == expected


def test_a_pinned_version_answers_with_that_arm_and_unknown_versions_are_refused(
    serve: Serve, ask: Ask
) -> None:
    service = serve([Arm(1, "stable", 100.0), Arm(2, "canary", 0.0)])
    answer = asyncio.run(ask(service, credit_row(), "pinned", version="2"))
    assert answer.version.version == 2  # a weight-0 arm is still reachable by name (previews)
    assert asyncio.run(ask(service, credit_row(), "routed")).version.version == 1
    with pytest.raises(Exception, match="version '3' of 'api' is not served here"):
        service.route("api", "3")
