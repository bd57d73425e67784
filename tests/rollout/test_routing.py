"""Routing: a weighted split, sticky by key across replicas, never to an arm that is not ready."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shipyard.rollout.deployments import Arm, Deployment
from shipyard.rollout.routing import Router, point

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def deployment(*arms: Arm) -> Deployment:
    return Deployment("api", "m", None, arms, "header:X-Shipyard-Key", 1, NOW, NOW)


def test_the_split_follows_the_weights() -> None:
    router = Router(deployment(Arm(1, "stable", 90), Arm(2, "canary", 10)), ready={1, 2})
    picks = [router.pick(f"user-{i}").version for i in range(20_000)]
    assert picks.count(2) / len(picks) == pytest.approx(0.10, abs=0.01)
    unkeyed = [router.pick(None).version for _ in range(20_000)]
    assert unkeyed.count(2) / len(unkeyed) == pytest.approx(0.10, abs=0.01)


def test_a_key_always_lands_on_the_same_arm_in_every_router() -> None:
    arms = (Arm(1, "stable", 75), Arm(2, "canary", 25))
    first, second = Router(deployment(*arms), ready={1, 2}), Router(deployment(*arms), ready={1, 2})
    for i in range(500):
        key = f"customer-{i}"
        assert {first.pick(key).version for _ in range(3)} == {second.pick(key).version}


def test_raising_the_canary_weight_never_moves_a_canary_user_back() -> None:
    keys = [f"k{i}" for i in range(5000)]
    small = Router(deployment(Arm(1, "stable", 95), Arm(2, "canary", 5)), ready={1, 2})
    large = Router(deployment(Arm(1, "stable", 50), Arm(2, "canary", 50)), ready={1, 2})
    on_canary = {k for k in keys if small.pick(k).version == 2}
    assert on_canary
    assert all(large.pick(k).version == 2 for k in on_canary)


def test_an_arm_that_is_not_ready_gets_no_request() -> None:
    router = Router(deployment(Arm(1, "stable", 50), Arm(2, "canary", 50), Arm(3, "shadow", 100)), ready={1})
    assert {router.pick(f"u{i}").version for i in range(1000)} == {1}
    assert router.copy_to_shadow("u1") is None


def test_the_shadow_gets_its_share_of_copies() -> None:
    router = Router(deployment(Arm(1, "stable", 100), Arm(3, "shadow", 20)), ready={1, 3})
    copies = sum(router.copy_to_shadow(f"u{i}") is not None for i in range(20_000))
    assert copies / 20_000 == pytest.approx(0.20, abs=0.01)
    assert point("same") == point("same") != point("same", salt=b"shadow")
