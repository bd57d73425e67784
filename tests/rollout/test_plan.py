"""A rollout's plan: its strategy, steps and timing checked as it is made, and stored as data."""

from __future__ import annotations

import pytest

from shipyard.errors import RolloutError
from shipyard.rollout.plan import AnalysisRules, Plan, parse_steps


@pytest.mark.parametrize(
    ("steps", "says"),
    [("5,25,50", "end at 100"), ("50,25,100", "must rise"), ("100", "below 100"), ("a,b", "percents like")],
)
def test_canary_steps_are_checked(steps: str, says: str) -> None:
    with pytest.raises(RolloutError, match=says):
        parse_steps(steps)


def test_canary_steps_read_from_text_or_numbers_alike() -> None:
    assert parse_steps("10, 50,100") == (10.0, 50.0, 100.0)
    assert parse_steps([10, 50, 100]) == (10.0, 50.0, 100.0)


@pytest.mark.parametrize(
    ("made", "says"),
    [
        (lambda: Plan(strategy="linear"), "not one of canary, blue-green, shadow"),  # type: ignore[arg-type]
        (lambda: Plan(strategy="canary", steps=(10, 50)), "end at 100"),
        (lambda: Plan(strategy="canary", interval=0), "--interval is 0; expected seconds above 0"),
        (lambda: Plan(strategy="shadow", keep_warm=float("nan")), "--keep-warm"),
        (lambda: Plan(strategy="shadow", shadow_share=150), "shadow share is 150"),
        (lambda: AnalysisRules(alpha=1.0), "alpha is 1.0; expected between 0 and 1"),
        (lambda: AnalysisRules(max_latency_ratio_p95=-1), "max_latency_ratio_p95 is -1; expected 0 or more"),
        (lambda: AnalysisRules(min_requests=True), "min_requests is True; expected a number"),
        (lambda: AnalysisRules.from_dict({"min_request": 5}), "unknown analysis rules"),
    ],
)
def test_a_bad_plan_or_rule_is_refused_saying_what_was_expected(made: object, says: str) -> None:
    with pytest.raises(RolloutError, match=says):
        made()  # type: ignore[operator]


def test_steps_matter_only_to_a_canary_and_each_strategy_promotes_after_its_last_step() -> None:
    assert Plan(strategy="canary", steps=(10, 50, 100)).last_step == 1
    assert Plan(strategy="blue-green", steps=()).last_step == 1
    assert Plan(strategy="shadow", steps=()).last_step == 0


def test_a_plan_stored_as_data_comes_back_the_same() -> None:
    plan = Plan(
        strategy="blue-green",
        interval=30,
        keep_warm=90,
        preview=({"age": [30]},),
        promote_alias=False,
        rules=AnalysisRules(min_requests=20, alpha=0.01),
    )
    assert Plan.from_dict(plan.to_dict()) == plan
    assert plan.to_dict()["rules"]["min_requests"] == 20
