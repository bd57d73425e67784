"""Evaluations and gate results stored on versions, and the gate a protected alias moves through.

The gates that write these results, end to end, are tested in tests/evaluation/test_gates.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shipyard import Registry, Settings
from shipyard.errors import ConfigError, GateError, NotFoundError
from shipyard.registry.results import policy_digest

POLICY = "rules: ['roc_auc >= 0.5']\n"


def _gate(registry: Registry, ref: str, *, passed: bool, champion: int | None, policy: str = POLICY) -> Any:
    body = {"rules": [{"rule": "roc_auc >= 0.5", "passed": passed}]}
    return registry.results.add_gate_result(
        ref,
        alias="production",
        champion_version=champion,
        policy_digest=policy_digest(policy),
        passed=passed,
        body=body,
    )


def test_evaluations_are_kept_newest_first_and_found_by_their_data(registry: Registry, v1: Any) -> None:
    first, none = registry.results.add_evaluation(
        "cancer:1", data_fingerprint="a" * 64, rows=10, body={"n": 1}
    )
    assert none is None and first.ref.version == 1 and first.actor == "tester"
    registry.results.add_evaluation("cancer:1", data_fingerprint="b" * 64, rows=20, body={"n": 2})
    assert [e.body["n"] for e in registry.results.evaluations("cancer:1")] == [2, 1]
    assert [e.rows for e in registry.results.evaluations("cancer:1", data_fingerprint="a" * 64)] == [10]
    assert [e.body["n"] for e in registry.results.evaluations("cancer", limit=1)] == [2]


def test_a_champion_s_evaluation_is_stored_with_its_challenger_and_named_by_id(
    registry: Registry, v1: Any, cancer_model: Any, cancer: pd.DataFrame
) -> None:
    registry.register(cancer_model, name="cancer", train_data=cancer, target="label")
    mine, theirs = registry.results.add_evaluation(
        "cancer:2",
        data_fingerprint="c" * 64,
        rows=5,
        body={"champion_ref": {"ref": "cancer:1"}},
        champion=("cancer:1", {"n": 0}),
    )
    assert theirs is not None and theirs.ref.version == 1
    assert mine.body["champion_ref"]["id"] == theirs.id


def test_gate_results_are_listed_by_version_or_for_every_version_of_a_name(
    registry: Registry, v1: Any, cancer_model: Any, cancer: pd.DataFrame
) -> None:
    registry.register(cancer_model, name="cancer", train_data=cancer, target="label")
    one = _gate(registry, "cancer:1", passed=True, champion=None)
    two = _gate(registry, "cancer:2", passed=False, champion=None)
    assert [g.id for g in registry.results.gate_results("cancer")] == [two.id, one.id]
    assert [g.id for g in registry.results.gate_results("cancer:1")] == [one.id]
    assert [g.passed for g in registry.results.gate_results("cancer", gate_id=two.id)] == [False]
    assert one.policy_digest == policy_digest(POLICY) and len(one.policy_digest) == 64
    with pytest.raises(NotFoundError):
        registry.results.gate_results("cancer:3")


def test_a_protected_alias_moves_to_a_version_whose_newest_gate_passed_against_its_holder(
    registry: Registry, v1: Any, cancer_model: Any, cancer: pd.DataFrame
) -> None:
    with pytest.raises(GateError, match="'production' is a protected alias: cancer:1 has no gate result"):
        registry.set_alias("cancer:1", "production")
    _gate(registry, "cancer:1", passed=True, champion=None)
    assert registry.set_alias("cancer:1", "production").version == 1
    registry.set_alias("cancer:1", "production")  # where it already points: nothing to judge
    registry.register(cancer_model, name="cancer", train_data=cancer, target="label")
    _gate(registry, "cancer:2", passed=True, champion=None)  # checked before cancer:1 held it
    with pytest.raises(GateError, match="against no version behind 'production'.*stale"):
        registry.set_alias("cancer:2", "production")
    _gate(registry, "cancer:2", passed=False, champion=1)
    with pytest.raises(GateError, match=r"failed: roc_auc >= 0.5; fix the model"):
        registry.set_alias("cancer:2", "production")
    _gate(registry, "cancer:2", passed=True, champion=1)
    assert registry.set_alias("cancer:2", "production").version == 2
    registry.set_alias("cancer:1", "staging")  # an alias nobody protects needs no gate


def test_the_required_policy_is_the_one_a_gate_must_have_passed(
    settings: Settings, tmp_path: Path, cancer_model: Any, cancer: pd.DataFrame
) -> None:
    required = tmp_path / "gates.yaml"
    required.write_text(POLICY)
    with Registry(replace(settings, gates_policy=required), actor="tester") as registry:
        registry.register(cancer_model, name="cancer", train_data=cancer, target="label")
        _gate(registry, "cancer:1", passed=True, champion=None, policy="rules: ['accuracy >= 0']\n")
        with pytest.raises(GateError, match="passed a policy other than the required"):
            registry.set_alias("cancer:1", "production")
        _gate(registry, "cancer:1", passed=True, champion=None)
        assert registry.set_alias("cancer:1", "production").version == 1
        registry.register(cancer_model, name="cancer", train_data=cancer, target="label")
        _gate(registry, "cancer:2", passed=True, champion=1)
    missing = replace(settings, gates_policy=tmp_path / "missing.yaml")
    unreadable = pytest.raises(ConfigError, match="SHIPYARD_GATES_POLICY is .*missing.yaml.*cannot be read")
    with Registry(missing, actor="tester") as registry, unreadable:
        registry.set_alias("cancer:2", "production")
