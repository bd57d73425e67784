"""Deployments: created from a reference, arms checked, every change one transaction and audited."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select

from shipyard import Registry
from shipyard.errors import (
    ConflictError,
    DeploymentNotFoundError,
    NotFoundError,
    RolloutConflictError,
    RolloutError,
)
from shipyard.rollout.deployments import Arm, Deployments, check_arms, check_sticky
from shipyard.store.schema import audit_log


@pytest.fixture
def versions(registry: Registry, credit: pd.DataFrame, credit_pipeline: Any) -> Registry:
    """`credit` versions 1, 2 and 3 (3 archived), with 1 as `production`."""
    for _ in range(3):
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    registry.set_alias("credit:1", "production", force=True, reason="test set-up")
    registry.archive("credit:3")
    return registry


def test_create_follows_the_alias_and_starts_with_one_stable_arm(versions: Registry) -> None:
    deployment = Deployments(versions).create("credit-api", "credit@production")
    assert (deployment.model, deployment.alias) == ("credit", "production")
    assert deployment.arms == (Arm(1, "stable", 100.0),)
    assert deployment.sticky == "header:X-Shipyard-Key"
    assert Deployments(versions).get("credit-api") == deployment


def test_set_arms_replaces_them_bumps_the_generation_and_records_the_change(versions: Registry) -> None:
    deployments = Deployments(versions)
    before = deployments.create("credit-api", "credit:1")
    after = deployments.set_arms(
        "credit-api", [Arm(2, "canary", 10), Arm(1, "stable", 90)], reason="canary step 1"
    )
    assert after.arms == (Arm(1, "stable", 90.0), Arm(2, "canary", 10.0))
    assert after.generation == before.generation + 1 == deployments.generation("credit-api")
    with versions.meta.read() as conn:
        actions = conn.execute(select(audit_log.c.action, audit_log.c.detail).order_by(audit_log.c.seq)).all()
    assert actions[-1].action == "deployment.arms"
    assert actions[-1].detail["reason"] == "canary step 1"


@pytest.mark.parametrize(
    ("arms", "says"),
    [
        ([Arm(1, "stable", 90), Arm(2, "canary", 20)], "add up to 100"),
        ([Arm(1, "stable", 100), Arm(2, "stable", 0)], "exactly one stable arm"),
        ([Arm(2, "canary", 100)], "exactly one stable arm"),
        ([Arm(1, "stable", 100), Arm(1, "shadow", 50)], "one arm only"),
        ([Arm(1, "stable", 100), Arm(2, "shadow", 0)], "above 0"),
        ([Arm(1, "stable", 110), Arm(2, "canary", -10)], "percent from 0 to 100"),
    ],
)
def test_arms_that_do_not_make_a_deployment_are_refused(arms: list[Arm], says: str) -> None:
    with pytest.raises(RolloutError, match=says):
        check_arms(arms, where="deployment 'x'")


def test_a_refused_change_leaves_the_deployment_as_it_was(versions: Registry) -> None:
    deployments = Deployments(versions)
    before = deployments.create("credit-api", "credit:1")
    with pytest.raises(RolloutError, match="archived"):
        deployments.set_arms("credit-api", [Arm(1, "stable", 50), Arm(3, "canary", 50)], reason="x")
    with pytest.raises(NotFoundError):
        deployments.set_arms("credit-api", [Arm(1, "stable", 50), Arm(9, "canary", 50)], reason="x")
    assert deployments.get("credit-api") == before


def test_a_version_with_other_features_cannot_join_the_deployment(
    versions: Registry, credit: pd.DataFrame
) -> None:
    from sklearn.linear_model import LogisticRegression

    narrow = credit[["age", "debt_ratio", "default"]]
    model = LogisticRegression().fit(narrow[["age", "debt_ratio"]], narrow["default"])
    other = versions.register(model, name="credit", train_data=narrow, target="default")
    deployments = Deployments(versions)
    deployments.create("credit-api", "credit:1")
    with pytest.raises(RolloutError, match="lacks the features") as caught:
        deployments.set_arms(
            "credit-api", [Arm(1, "stable", 90), Arm(other.version, "canary", 10)], reason="x"
        )
    assert f"credit:{other.version}" in str(caught.value)


def test_unknown_and_duplicate_deployments_get_clear_errors(versions: Registry) -> None:
    deployments = Deployments(versions)
    with pytest.raises(DeploymentNotFoundError, match="none yet"):
        deployments.get("nope")
    deployments.create("credit-api", "credit:1")
    with pytest.raises(RolloutConflictError, match="exists"):
        deployments.create("credit-api", "credit:2")
    with pytest.raises(DeploymentNotFoundError, match="credit-api"):
        deployments.get("nope")
    with pytest.raises(RolloutError, match="archived"):
        deployments.create("other", "credit:3")


def test_sticky_keys_are_a_header_or_a_feature() -> None:
    assert check_sticky("feature:customer_id") == "feature:customer_id"
    assert check_sticky(None) == "header:X-Shipyard-Key"
    with pytest.raises(RolloutError, match="header:NAME"):
        check_sticky("cookie:session")


def test_delete_removes_the_deployment(versions: Registry) -> None:
    deployments = Deployments(versions)
    deployments.create("credit-api", "credit:1")
    deployments.delete("credit-api")
    assert deployments.list() == []


def test_a_version_a_deployment_serves_cannot_be_archived_or_deleted(
    registry: Registry, credit: Any, credit_pipeline: Any
) -> None:
    for _ in range(2):
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    Deployments(registry).create("api", "credit:1")
    Deployments(registry).set_arms("api", [Arm(1, "stable", 90.0), Arm(2, "canary", 10.0)], reason="test")
    for action in (registry.archive, registry.delete):
        with pytest.raises(ConflictError, match=r"deployment\(s\) api \(canary\) serve it"):
            action("credit:2")
    assert registry.get("credit:2").status == "live"
