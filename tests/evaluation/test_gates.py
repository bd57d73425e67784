"""Gates: the policy's syntax and rules, stored results, and the protected alias they guard."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shipyard import GateError, Policy, Registry, Settings, check_gates, evaluate


def _quick(reg: Registry, ref: str, frame: pd.DataFrame, **options: Any) -> Any:
    options = {"robust": False, "resamples": 0} | options
    return evaluate(ref, frame, target="default", registry=reg, **options)


def test_first_version_passes_relative_rules_only_for_lack_of_a_champion(
    two_versions: Registry, holdout: pd.DataFrame, policy_text: str
) -> None:
    _quick(two_versions, "credit:1", holdout, sensitive=["country"], slices=["employment"], robust=True)
    result = check_gates("credit:1", Policy.parse(policy_text), registry=two_versions)
    assert result.passed, [r.to_dict() for r in result.failed]
    relative = result.results[1]
    assert relative.passed and relative.reason == "no champion to compare with"
    assert result.champion is None and result.notes


def test_a_worse_challenger_fails_the_relative_rule_and_the_result_is_stored(
    two_versions: Registry, holdout: pd.DataFrame
) -> None:
    two_versions.set_alias("credit:1", "production", force=True, reason="set-up")
    policy = Policy.parse("rules:\n  - roc_auc >= 0.5\n  - roc_auc >= champion - 0.001\n")
    result = check_gates(
        "credit:2", policy, data=holdout, target="default", robust=False, resamples=0, registry=two_versions
    )
    assert not result.passed
    assert [r.passed for r in result.results] == [True, False]
    failed = result.results[1]
    assert failed.champion == result.evaluation.champion.metrics["roc_auc"]
    assert failed.limit == pytest.approx(failed.champion - 0.001)
    stored = two_versions.results.gate_results("credit:2")[0]
    assert stored.id == result.id and not stored.passed and stored.champion_version == 1
    assert stored.body["rules"][1] == failed.to_dict()


def test_a_metric_the_evaluation_lacks_fails_its_rule(two_versions: Registry, holdout: pd.DataFrame) -> None:
    _quick(two_versions, "credit:1", holdout)
    policy = Policy.parse(
        "rules:\n"
        "  - at_threshold.f1 >= 0\n"
        "  - fairness.country.demographic_parity_difference <= 1\n"
        "  - robustness.attack.success_rate <= 1\n"
        "  - f1 >= 0 on employment=unemployed\n"
        "  - per_class.7.recall >= 0\n"
    )
    result = check_gates("credit:1", policy, registry=two_versions)
    assert not result.passed
    assert [r.passed for r in result.results] == [False] * 5
    reasons = [r.reason for r in result.results]
    assert "no at_threshold.f1" in reasons[0]
    assert "--sensitive country" in reasons[1]
    assert "without robustness" in reasons[2]
    assert "--slice employment" in reasons[3]


def test_gates_without_data_need_a_stored_evaluation(two_versions: Registry) -> None:
    from shipyard import EvaluationError

    with pytest.raises(EvaluationError, match="has no stored evaluation"):
        check_gates("credit:1", Policy.parse("rules: ['roc_auc >= 0.5']"), registry=two_versions)


def test_relative_rule_fails_when_the_champion_has_no_evaluation_on_the_same_rows(
    two_versions: Registry, holdout: pd.DataFrame
) -> None:
    two_versions.set_alias("credit:1", "production", force=True, reason="set-up")
    _quick(two_versions, "credit:2", holdout, champion=None)
    result = check_gates(
        "credit:2", Policy.parse("rules: ['roc_auc >= champion - 0.5']"), registry=two_versions
    )
    assert not result.passed
    assert "no evaluation on the same rows" in result.results[0].reason


def test_protected_alias_moves_only_with_a_passing_current_gate(
    registry: Registry,
    credit: pd.DataFrame,
    credit_pipeline: Any,
    weaker_pipeline: Any,
    holdout: pd.DataFrame,
) -> None:
    registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    registry.register(weaker_pipeline, name="credit", train_data=credit, target="default")
    registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    with pytest.raises(GateError, match="no gate result for 'production'"):
        registry.set_alias("credit:1", "production")
    lenient = Policy.parse("rules: ['roc_auc >= 0.5', 'roc_auc >= champion - 0.2']")
    strict = Policy.parse("rules: ['roc_auc >= champion + 0.2']")
    assert check_gates(
        "credit:1", lenient, data=holdout, target="default", robust=False, resamples=0, registry=registry
    ).passed
    assert registry.set_alias("credit:1", "production").version == 1
    # A failing result blocks; a passing one against the current champion lets it through.
    assert not check_gates(
        "credit:2", strict, data=holdout, target="default", robust=False, resamples=0, registry=registry
    ).passed
    with pytest.raises(GateError, match=r"failed: roc_auc >= champion \+ 0.2"):
        registry.set_alias("credit:2", "production")
    assert check_gates(
        "credit:3", lenient, data=holdout, target="default", robust=False, resamples=0, registry=registry
    ).passed
    # credit:2 passes too, but against credit:1; once production moves to 3 that result is stale.
    assert check_gates("credit:2", lenient, registry=registry).passed
    registry.set_alias("credit:3", "production")
    with pytest.raises(GateError, match="stale"):
        registry.set_alias("credit:2", "production")
    assert registry.get("credit@production").version == 3


def test_force_needs_a_reason_and_records_who_and_why(two_versions: Registry) -> None:
    with pytest.raises(GateError, match="needs a reason"):
        two_versions.set_alias("credit:2", "production", force=True)
    two_versions.set_alias("credit:2", "production", force=True, reason="incident 42 hotfix")
    change = two_versions.history("credit", limit=1)[0]
    assert change.action == "alias" and change.actor == "tester"
    assert change.detail["forced"] is True and change.detail["reason"] == "incident 42 hotfix"
    assert "no gate result" in change.detail["overridden"]


def test_registering_straight_into_a_protected_alias_is_refused(
    sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any
) -> None:
    with pytest.raises(GateError, match="protected alias"):
        sqlite_registry.register(
            credit_pipeline, name="credit", train_data=credit, target="default", alias="production"
        )
    assert sqlite_registry.list_models() == []


def test_protected_aliases_and_the_required_policy_are_configurable(
    tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any, holdout: pd.DataFrame
) -> None:
    required = tmp_path / "team-gates.yaml"
    required.write_text("rules: ['roc_auc >= 0.5']\n")
    settings = Settings.from_env(
        {
            "SHIPYARD_HOME": str(tmp_path / "home"),
            "SHIPYARD_PROTECTED_ALIASES": "live, champion",
            "SHIPYARD_GATES_POLICY": str(required),
        }
    )
    assert settings.protected_aliases == ("live", "champion")
    with Registry(settings, actor="tester") as reg:
        reg.register(
            credit_pipeline, name="credit", train_data=credit, target="default", alias="production"
        )  # no longer protected
        other = Policy.parse("champion: live\nrules: ['accuracy >= 0']\n")
        check_gates(
            "credit:1", other, data=holdout, target="default", robust=False, resamples=0, registry=reg
        )
        with pytest.raises(GateError, match="policy other than the required"):
            reg.set_alias("credit:1", "live")
        team = replace(Policy.read(required), champion="live")
        assert check_gates("credit:1", team, registry=reg).passed
        assert reg.set_alias("credit:1", "live").aliases == ("live", "production")
        # With no policy given, the gate check uses SHIPYARD_GATES_POLICY.
        assert check_gates("credit:1", registry=reg).policy.source == str(required)


def test_concurrent_promotions_are_judged_one_after_the_other(
    registry: Registry, credit: pd.DataFrame, credit_pipeline: Any, holdout: pd.DataFrame
) -> None:
    import threading
    import time

    from shipyard.core.refs import ModelRef
    from shipyard.registry.queries import move_alias, resolve
    from shipyard.registry.results import lock_model

    for _ in range(3):
        registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    registry.set_alias("credit:1", "production", force=True, reason="set-up")
    lenient = Policy.parse("rules: ['roc_auc >= champion - 0.5']")
    for ref in ("credit:2", "credit:3"):
        assert check_gates(
            ref, lenient, data=holdout, target="default", robust=False, resamples=0, registry=registry
        ).passed
    inside = threading.Event()

    def other_promotion(conn: Any) -> None:
        # What a concurrent set_alias('credit:3') does, holding its transaction open a while.
        row = resolve(conn, ModelRef("credit", version=3))
        lock_model(conn, row.model_id)
        move_alias(conn, row.model_id, "production", row.id, row.created_at)
        inside.set()
        time.sleep(1.0)

    other = threading.Thread(target=registry.meta.write, args=(other_promotion,))
    other.start()
    assert inside.wait(10)
    with pytest.raises(GateError, match="stale"):
        registry.set_alias("credit:2", "production")
    other.join()
    assert registry.get("credit@production").version == 3


def test_removing_a_protected_alias_needs_force_and_a_reason(two_versions: Registry) -> None:
    two_versions.set_alias("credit:1", "production", force=True, reason="set-up")
    with pytest.raises(GateError, match="removing it"):
        two_versions.remove_alias("credit", "production")
    two_versions.remove_alias("credit", "production", force=True, reason="decommissioned")
    change = two_versions.history("credit", limit=1)[0]
    assert change.action == "unalias" and change.detail["reason"] == "decommissioned"
    two_versions.set_alias("credit:1", "staging")
    two_versions.remove_alias("credit", "staging")  # an ordinary alias needs neither


def test_gate_results_of_an_unknown_model_are_not_found(two_versions: Registry) -> None:
    from shipyard import NotFoundError

    assert two_versions.results.gate_results("credit") == []
    with pytest.raises(NotFoundError, match="no model named 'nosuch'"):
        two_versions.results.gate_results("nosuch")


def test_slice_rules_find_their_group_in_any_cut_and_dotted_metrics_resolve(
    sqlite_registry: Registry, holdout: pd.DataFrame
) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    frame = X.assign(t=y, grp=["solo"] + ["many"] * (len(X) - 1))
    sqlite_registry.register(Ridge().fit(X, y), name="d", train_data=X.assign(t=y), target="t")
    evaluate(
        "d:1",
        frame,
        target="t",
        slices=["age", "age:-0.05,0,0.05", "grp"],
        robust=False,
        resamples=0,
        registry=sqlite_registry,
    )
    policy = Policy.parse(
        "rules:\n"
        "  - mae <= 1000 on age=[-0.05, 0)\n"
        "  - residual_quantiles.0.5 <= 1000\n"
        "  - r2 >= -1 on grp=solo\n"
    )
    result = check_gates("d:1", policy, registry=sqlite_registry)
    assert [r.passed for r in result.results] == [True, True, False]
    assert "not defined" in result.results[2].reason or "no number" in result.results[2].reason
