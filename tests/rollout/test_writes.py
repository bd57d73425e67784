"""The arms each step of each strategy gives a deployment (`rollout.writes.arms_at`)."""

from __future__ import annotations

import pytest

from shipyard.rollout.deployments import Arm
from shipyard.rollout.plan import Plan
from shipyard.rollout.writes import arms_at


@pytest.mark.parametrize(
    ("plan", "step", "arms"),
    [
        (Plan(strategy="canary", steps=(10, 50, 100)), 0, [Arm(1, "stable", 90.0), Arm(2, "canary", 10.0)]),
        (Plan(strategy="canary", steps=(10, 50, 100)), 1, [Arm(1, "stable", 50.0), Arm(2, "canary", 50.0)]),
        (Plan(strategy="blue-green"), 0, [Arm(1, "stable", 100.0), Arm(2, "canary", 0.0)]),
        (Plan(strategy="blue-green"), 1, [Arm(2, "stable", 100.0), Arm(1, "canary", 0.0)]),
        (Plan(strategy="shadow", shadow_share=25.0), 0, [Arm(1, "stable", 100.0), Arm(2, "shadow", 25.0)]),
    ],
    ids=["canary first step", "canary second step", "blue-green preview", "blue-green switched", "shadow"],
)
def test_each_step_gives_the_deployment_its_arms(plan: Plan, step: int, arms: list[Arm]) -> None:
    assert arms_at(plan, step, new=2, old=1) == arms
