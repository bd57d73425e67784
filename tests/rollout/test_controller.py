"""The rollout controller on a real store and a real prediction log: steps, verdicts, lease, restart."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard import Registry
from shipyard.core.batch import Batch, Predictions
from shipyard.monitoring.events import EventBatch, EventLog
from shipyard.monitoring.feedback import FeedbackStore, Label
from shipyard.rollout.controller import Controller
from shipyard.rollout.deployments import Arm, Deployments
from shipyard.rollout.plan import AnalysisRules, Plan
from shipyard.rollout.rollouts import Rollouts
from shipyard.store.metadata import utcnow

RULES = AnalysisRules(min_requests=100, min_labels=50)
CANARY = Plan(strategy="canary", steps=(10, 50, 100), interval=60, rules=RULES)


def registry_of(rollouts: Rollouts) -> Registry:
    """The registry the rollouts act in (same context: same principal, actor and stores)."""
    return Registry(context=rollouts.context)


@pytest.fixture
def rollouts(registry: Registry, credit: pd.DataFrame, credit_pipeline: Any) -> Rollouts:
    """Deployment `api` of `credit@staging` (version 1); version 2 exists."""
    for _ in range(2):
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    registry.set_alias("credit:1", "staging")
    Deployments(registry).create("api", "credit@staging")
    return Rollouts(registry)


def log_traffic(
    registry: Registry,
    version: int,
    requests: int,
    *,
    seed: int,
    at: float | None = None,
    error_share: float = 0.0,
    shift: float = 0.0,
    protocol: str = "rest",
    ids: list[str] | None = None,
) -> list[str]:
    """Write one-row requests answered by `version` to the real prediction log; returns their ids."""
    rng = np.random.default_rng(seed)
    ids = ids or [f"v{version}-{seed}-{i}" for i in range(requests)]
    failed = rng.random(requests) < error_share
    score = 1 / (1 + np.exp(-(rng.normal(size=requests) + shift)))
    ok = ~failed
    log = EventLog(registry.settings.store_url, worker=f"t{seed}")
    log.append(
        EventBatch(
            time=at if at is not None else time.time(),
            model="credit",
            version=version,
            request_ids=[i for i, f in zip(ids, failed, strict=True) if not f]
            + [i for i, f in zip(ids, failed, strict=True) if f],
            rows=[1] * requests,
            protocols=[protocol] * requests,
            latencies_ms=list(rng.gamma(4.0, 0.5, requests)),
            statuses=["ok"] * int(ok.sum()) + ["rejected"] * int(failed.sum()),
            errors=[None] * int(ok.sum()) + ["model failed"] * int(failed.sum()),
            features=Batch.from_columns({"age": rng.integers(20, 70, int(ok.sum()))}),
            predictions=Predictions(
                "classification", (score[ok] > 0.5).astype(np.int64), np.c_[1 - score[ok], score[ok]], (0, 1)
            ),
        )
    )
    log.close()
    return [i for i, f in zip(ids, failed, strict=True) if not f]


def later(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


def arms(rollouts: Rollouts) -> tuple[Arm, ...]:
    return rollouts.deployments.get("api").arms


def test_a_good_canary_steps_through_and_promotes(rollouts: Rollouts) -> None:
    controller = Controller(registry_of(rollouts))
    rollouts.start("api", "credit:2", CANARY)
    for seed in (1, 2):
        log_traffic(registry_of(rollouts), 1, 600, seed=seed * 10)
        log_traffic(registry_of(rollouts), 2, 300, seed=seed * 10 + 1)
        [early] = controller.tick()
        assert early.action == "hold"  # passing, but the step has not lasted its interval
        [moved] = controller.tick(later(61))
        assert moved.action == "advance", moved.reason
    assert rollouts.current("api").state == "promoted"  # type: ignore[union-attr]
    assert arms(rollouts) == (Arm(2, "stable", 100.0),)
    assert registry_of(rollouts).get("credit@staging").version == 2
    history = rollouts.history("api")
    assert [e.kind for e in history] == ["start", "step", "step", "promoted"]
    assert history[-1].actor == "rollout-controller"
    assert history[-1].detail["verdict"] == "pass"
    assert {c["rule"] for c in history[-1].detail["checks"]} >= {"error rate", "latency p95"}


def test_a_canary_that_errors_rolls_back_at_once_without_waiting_for_the_interval(
    rollouts: Rollouts,
) -> None:
    controller = Controller(registry_of(rollouts))
    rollouts.start("api", "credit:2", CANARY)
    log_traffic(registry_of(rollouts), 1, 600, seed=1)
    log_traffic(registry_of(rollouts), 2, 300, seed=2, error_share=0.3)
    [decision] = controller.tick()
    assert decision.action == "roll_back"
    assert "error rate" in decision.reason
    ended = rollouts.current("api")
    assert ended is not None and ended.state == "rolled_back"
    assert arms(rollouts) == (Arm(1, "stable", 100.0),)
    assert registry_of(rollouts).get("credit@staging").version == 1


def test_a_canary_with_shifted_predictions_rolls_back(rollouts: Rollouts) -> None:
    rollouts.start("api", "credit:2", CANARY)
    log_traffic(registry_of(rollouts), 1, 600, seed=1)
    log_traffic(registry_of(rollouts), 2, 300, seed=2, shift=3.0)
    [decision] = Controller(registry_of(rollouts)).tick()
    assert decision.action == "roll_back"
    assert "PSI" in decision.reason or "prediction" in decision.reason


def test_too_few_requests_wait_and_the_wait_is_noted_once(rollouts: Rollouts) -> None:
    controller = Controller(registry_of(rollouts), analysis_seconds=0)
    rollouts.start("api", "credit:2", CANARY)
    log_traffic(registry_of(rollouts), 1, 600, seed=1)
    log_traffic(registry_of(rollouts), 2, 5, seed=2, error_share=1.0)  # all failed, but only five
    for _ in range(3):
        [decision] = controller.tick(later(120))
        assert decision.action == "wait"
    assert "5 requests on the new version" in decision.reason
    assert [e.kind for e in rollouts.history("api")] == ["start", "step", "wait"]
    assert arms(rollouts) == (Arm(1, "stable", 90.0), Arm(2, "canary", 10.0))


def test_labels_that_arrive_judge_the_canary(rollouts: Rollouts) -> None:
    rollouts.start("api", "credit:2", CANARY)
    stable_ids = log_traffic(registry_of(rollouts), 1, 600, seed=1)
    canary_ids = log_traffic(registry_of(rollouts), 2, 600, seed=1, ids=[f"c{i}" for i in range(600)])
    # Same outputs on both arms, but the labels say the stable arm is right and the canary wrong.
    store = FeedbackStore(rollouts.context)
    rng = np.random.default_rng(1)  # the draws `log_traffic` made: failures, then scores
    rng.random(600)
    score = 1 / (1 + np.exp(-rng.normal(size=600)))
    right = (score > 0.5).astype(int).tolist()
    store.add([Label(i, 0, y) for i, y in zip(stable_ids, right, strict=True)], source="test", actor="t")
    store.add([Label(i, 0, 1 - y) for i, y in zip(canary_ids, right, strict=True)], source="test", actor="t")
    [decision] = Controller(registry_of(rollouts)).tick()
    assert decision.action == "roll_back"
    assert "accuracy" in decision.reason


def test_one_controller_acts_across_replicas_and_another_resumes_after_it_dies(rollouts: Rollouts) -> None:
    first = Controller(registry_of(rollouts), holder="replica-a", lease_seconds=1)
    second = Controller(registry_of(rollouts), holder="replica-b", lease_seconds=1)
    rollouts.start("api", "credit:2", CANARY)
    log_traffic(registry_of(rollouts), 1, 600, seed=1)
    log_traffic(registry_of(rollouts), 2, 300, seed=2)
    assert first.tick(later(61))[0].action == "advance"
    assert second.tick(later(200)) == []  # the lease is replica-a's
    # replica-a dies without releasing; once its lease expires replica-b carries on from step 2.
    time.sleep(1.2)
    log_traffic(registry_of(rollouts), 1, 600, seed=3)
    log_traffic(registry_of(rollouts), 2, 300, seed=4)
    [decision] = second.tick(later(61))
    assert decision.action == "advance"
    assert rollouts.current("api").state == "promoted"  # type: ignore[union-attr]
    assert rollouts.history("api")[-1].detail["verdict"] == "pass"


def test_a_paused_rollout_is_left_alone(rollouts: Rollouts) -> None:
    rollouts.start("api", "credit:2", CANARY)
    rollouts.pause("api", reason="looking")
    log_traffic(registry_of(rollouts), 1, 600, seed=1)
    log_traffic(registry_of(rollouts), 2, 300, seed=2, error_share=0.5)
    assert Controller(registry_of(rollouts)).tick(later(61)) == []
    assert rollouts.current("api").state == "paused"  # type: ignore[union-attr]


def test_blue_green_previews_switches_and_finishes_after_keep_warm(rollouts: Rollouts) -> None:
    rows = [{"age": 30, "income": 4000.0, "debt_ratio": 0.2, "months_employed": 50, "country": "DE",
             "employment": "salaried"}]  # fmt: skip
    plan = Plan(strategy="blue-green", interval=10, keep_warm=60, preview=tuple(rows), rules=RULES)
    controller = Controller(registry_of(rollouts))
    rollouts.start("api", "credit:2", plan)
    log_traffic(registry_of(rollouts), 1, 600, seed=1)  # the old version's traffic before the switch
    assert controller.tick()[0].action == "hold"
    assert [e.kind for e in rollouts.history("api")] == ["start", "step", "preview"]
    switched = controller.tick(later(11))[0]
    assert switched.action == "advance"
    assert arms(rollouts) == (Arm(2, "stable", 100.0), Arm(1, "canary", 0.0))
    assert registry_of(rollouts).get("credit@staging").version == 2
    log_traffic(registry_of(rollouts), 2, 300, seed=2, at=time.time() + 1)
    assert controller.tick(later(30))[0].action == "hold"
    assert controller.tick(later(61))[0].action == "advance"
    assert arms(rollouts) == (Arm(2, "stable", 100.0),)


def test_blue_green_switches_back_when_the_new_version_fails_after_the_switch(rollouts: Rollouts) -> None:
    plan = Plan(strategy="blue-green", interval=1, keep_warm=600, rules=RULES)
    controller = Controller(registry_of(rollouts))
    rollouts.start("api", "credit:2", plan)
    log_traffic(registry_of(rollouts), 1, 600, seed=1)
    assert controller.tick(later(2))[0].action == "advance"
    assert registry_of(rollouts).get("credit@staging").version == 2
    log_traffic(registry_of(rollouts), 2, 300, seed=2, at=time.time() + 3, error_share=0.3)
    [decision] = controller.tick(later(5))
    assert decision.action == "roll_back"
    assert arms(rollouts) == (Arm(1, "stable", 100.0),)
    assert registry_of(rollouts).get("credit@staging").version == 1  # the alias moved back too


def test_a_blue_green_preview_that_fails_rolls_back_before_any_traffic(rollouts: Rollouts) -> None:
    bad = ({"age": "not a number"},)
    rollouts.start("api", "credit:2", Plan(strategy="blue-green", interval=10, preview=bad))
    [decision] = Controller(registry_of(rollouts)).tick()
    assert decision.action == "roll_back"
    assert "preview row 1" in decision.reason
    assert arms(rollouts) == (Arm(1, "stable", 100.0),)


def test_a_shadow_that_agrees_passes_after_its_duration(rollouts: Rollouts) -> None:
    plan = Plan(strategy="shadow", duration=300, rules=RULES)
    controller = Controller(registry_of(rollouts))
    rollouts.start("api", "credit:2", plan)
    ids = [f"r{i}" for i in range(400)]
    log_traffic(registry_of(rollouts), 1, 400, seed=1, ids=ids)
    log_traffic(registry_of(rollouts), 2, 400, seed=1, ids=ids, protocol="shadow")
    assert controller.tick(later(100))[0].action == "hold"
    assert controller.tick(later(301))[0].action == "advance"
    assert rollouts.current("api").state == "passed"  # type: ignore[union-attr]
    assert registry_of(rollouts).get("credit@staging").version == 1


def test_a_shadow_that_disagrees_is_stopped_at_once(rollouts: Rollouts) -> None:
    rollouts.start("api", "credit:2", Plan(strategy="shadow", duration=300, rules=RULES))
    ids = [f"r{i}" for i in range(400)]
    log_traffic(registry_of(rollouts), 1, 400, seed=1, ids=ids)
    log_traffic(registry_of(rollouts), 2, 400, seed=7, ids=ids, protocol="shadow")
    [decision] = Controller(registry_of(rollouts)).tick()
    assert decision.action == "roll_back"
    assert "agree" in decision.reason
    assert arms(rollouts) == (Arm(1, "stable", 100.0),)


def test_a_promotion_the_gates_refuse_pauses_the_rollout_for_a_person(rollouts: Rollouts) -> None:
    registry = registry_of(rollouts)
    registry.set_alias("credit:1", "production", force=True, reason="test set-up")
    Deployments(registry).create("prod-api", "credit@production")
    rollouts.start("prod-api", "credit:2", CANARY)
    log_traffic(registry, 1, 600, seed=1)
    log_traffic(registry, 2, 300, seed=2)
    controller = Controller(registry)
    assert controller.tick(later(61))[0].action == "advance"
    log_traffic(registry, 1, 600, seed=3, at=time.time() + 1)
    log_traffic(registry, 2, 300, seed=4, at=time.time() + 1)
    [decision] = controller.tick(later(61))
    assert decision.action == "paused"
    assert "gates" in decision.reason
    assert registry.get("credit@production").version == 1
    assert rollouts.current("prod-api").state == "paused"  # type: ignore[union-attr]
