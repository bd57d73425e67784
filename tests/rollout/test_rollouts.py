"""The rollout state machine: each transition moves the arms, the state and the history together."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select

from shipyard import Registry
from shipyard.errors import (
    DeploymentNotFoundError,
    GateError,
    NotFoundError,
    RolloutConflictError,
    RolloutError,
)
from shipyard.rollout.deployments import Arm, Deployments
from shipyard.rollout.plan import Plan
from shipyard.rollout.rollouts import Rollouts
from shipyard.store.schema import audit_log

CANARY = Plan(strategy="canary", steps=(10, 50, 100), interval=60)


def registry_of(rollouts: Rollouts) -> Registry:
    """The registry the rollouts act in (same context: same principal, actor and stores)."""
    return Registry(context=rollouts.context)


@pytest.fixture
def rollouts(registry: Registry, credit: pd.DataFrame, credit_pipeline: Any) -> Rollouts:
    """Deployment `api` of `credit@staging` (version 1); versions 2 and 3 (archived) exist."""
    for _ in range(3):
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    registry.set_alias("credit:1", "staging")
    registry.archive("credit:3")
    Deployments(registry).create("api", "credit@staging")
    return Rollouts(registry)


def arms(rollouts: Rollouts) -> tuple[Arm, ...]:
    return rollouts.deployments.get("api").arms


def test_a_canary_steps_through_its_weights_and_promotes_moving_the_alias(rollouts: Rollouts) -> None:
    started = rollouts.start("api", "credit:2", CANARY)
    assert (started.state, started.step, started.from_version) == ("progressing", 0, 1)
    assert arms(rollouts) == (Arm(1, "stable", 90.0), Arm(2, "canary", 10.0))
    second = rollouts.advance(started, verdict={"verdict": "pass"})
    assert second.step == 1
    assert arms(rollouts) == (Arm(1, "stable", 50.0), Arm(2, "canary", 50.0))
    done = rollouts.advance(second, verdict={"verdict": "pass"})
    assert (done.state, done.finished_at is not None) == ("promoted", True)
    assert arms(rollouts) == (Arm(2, "stable", 100.0),)
    assert registry_of(rollouts).get("credit@staging").version == 2
    kinds = [e.kind for e in rollouts.history("api")]
    assert kinds == ["start", "step", "step", "promoted"]


def test_a_failed_rule_rolls_back_to_the_old_version_at_once(rollouts: Rollouts) -> None:
    started = rollouts.start("api", "credit:2", CANARY)
    ended = rollouts.roll_back(started, reason="error rate 30% > 1% over stable", verdict={"verdict": "fail"})
    assert ended.state == "rolled_back"
    assert "error rate" in ended.reason
    assert arms(rollouts) == (Arm(1, "stable", 100.0),)
    assert registry_of(rollouts).get("credit@staging").version == 1
    assert rollouts.history("api")[-1].detail["verdict"] == "fail"


def test_pause_holds_and_resume_restarts_the_step(rollouts: Rollouts) -> None:
    started = rollouts.start("api", "credit:2", CANARY)
    paused = rollouts.pause("api", reason="looking at a dashboard")
    assert paused.state == "paused"
    with pytest.raises(RolloutConflictError, match="is paused"):
        rollouts.advance(paused, verdict={})
    resumed = rollouts.resume("api")
    assert resumed.state == "progressing"
    assert resumed.step_started_at >= started.step_started_at
    assert arms(rollouts) == (Arm(1, "stable", 90.0), Arm(2, "canary", 10.0))


def test_abort_gives_all_traffic_back(rollouts: Rollouts) -> None:
    rollouts.start("api", "credit:2", CANARY)
    assert rollouts.abort("api", reason="wrong version").state == "aborted"
    assert arms(rollouts) == (Arm(1, "stable", 100.0),)
    with pytest.raises(RolloutConflictError, match="is aborted"):
        rollouts.abort("api")


def test_blue_green_previews_switches_with_the_old_version_warm_then_finishes(rollouts: Rollouts) -> None:
    plan = Plan(strategy="blue-green", keep_warm=30)
    preview = rollouts.start("api", "credit:2", plan)
    assert arms(rollouts) == (Arm(1, "stable", 100.0), Arm(2, "canary", 0.0))
    switched = rollouts.advance(preview, verdict={"verdict": "pass"})
    assert arms(rollouts) == (Arm(2, "stable", 100.0), Arm(1, "canary", 0.0))
    assert registry_of(rollouts).get("credit@staging").version == 2
    assert rollouts.advance(switched, verdict={"verdict": "pass"}).state == "promoted"
    assert arms(rollouts) == (Arm(2, "stable", 100.0),)


def test_a_shadow_rollout_moves_no_traffic_and_ends_passed(rollouts: Rollouts) -> None:
    shadow = rollouts.start("api", "credit:2", Plan(strategy="shadow", shadow_share=50))
    assert arms(rollouts) == (Arm(1, "stable", 100.0), Arm(2, "shadow", 50.0))
    assert rollouts.advance(shadow, verdict={"verdict": "pass"}).state == "passed"
    assert arms(rollouts) == (Arm(1, "stable", 100.0),)
    assert registry_of(rollouts).get("credit@staging").version == 1


def test_a_protected_alias_refuses_promotion_without_gates_and_nothing_changes(
    rollouts: Rollouts,
) -> None:
    registry = registry_of(rollouts)
    registry.set_alias("credit:1", "production", force=True, reason="test set-up")
    Deployments(registry).create("prod-api", "credit@production")
    started = rollouts.start("prod-api", "credit:2", CANARY)
    with pytest.raises(GateError, match="protected"):
        rollouts.promote("prod-api")
    assert rollouts.current("prod-api") == started
    assert registry.get("credit@production").version == 1


def test_bad_rollouts_are_refused_and_change_nothing(rollouts: Rollouts) -> None:
    with rollouts.meta.read() as conn:
        before = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
    with pytest.raises(DeploymentNotFoundError):
        rollouts.start("nope", "credit:2", CANARY)
    with pytest.raises(RolloutError, match="archived"):
        rollouts.start("api", "credit:3", CANARY)
    with pytest.raises(NotFoundError):
        rollouts.start("api", "credit:9", CANARY)
    with pytest.raises(RolloutConflictError, match="already the stable"):
        rollouts.start("api", "credit:1", CANARY)
    with pytest.raises(RolloutError, match="serves model 'credit'"):
        rollouts.start("api", "other:1", CANARY)
    with rollouts.meta.read() as conn:
        assert conn.execute(select(func.count()).select_from(audit_log)).scalar_one() == before
    rollouts.start("api", "credit:2", CANARY)
    with pytest.raises(RolloutConflictError, match="finish it first"):
        rollouts.start("api", "credit:2", CANARY)
