"""Robustness: noise and swap stability, the black-box attack, and contract sanitising."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard import EvaluationError, Registry, RobustnessSettings, adversarial_examples, evaluate


def _robust(reg: Registry, ref: str, frame: pd.DataFrame, **settings: Any) -> dict[str, Any]:
    result = evaluate(
        ref,
        frame,
        target="default",
        resamples=0,
        store=False,
        champion=None,
        robust=RobustnessSettings(**settings),
        registry=reg,
    )
    return dict(result.robustness)


def test_without_noise_every_prediction_is_stable(two_versions: Registry, holdout: pd.DataFrame) -> None:
    robust = _robust(two_versions, "credit:1", holdout, noise=0.0, rows=300)
    assert robust["noise"]["stability"] == 1.0 and robust["noise"]["sanitised"] == 0
    assert robust["rows"] == 300


def test_more_noise_moves_more_predictions(two_versions: Registry, holdout: pd.DataFrame) -> None:
    small = _robust(two_versions, "credit:1", holdout, noise=0.01)["noise"]["stability"]
    large = _robust(two_versions, "credit:1", holdout, noise=1.0)["noise"]["stability"]
    assert large < small <= 1.0


def test_swaps_cover_every_categorical_feature(two_versions: Registry, holdout: pd.DataFrame) -> None:
    swap = _robust(two_versions, "credit:1", holdout)["swap"]
    assert set(swap["features"]) == {"country", "employment"}
    assert swap["stability"] == min(f["stability"] for f in swap["features"].values())
    assert swap["weakest"] in swap["features"]


def test_attack_success_grows_with_its_budget_and_is_reproducible(
    two_versions: Registry, holdout: pd.DataFrame
) -> None:
    tiny = _robust(two_versions, "credit:1", holdout, eps=0.001, attack_rows=100)["attack"]
    big = _robust(two_versions, "credit:1", holdout, eps=1.0, attack_rows=100)["attack"]
    again = _robust(two_versions, "credit:1", holdout, eps=1.0, attack_rows=100)["attack"]
    assert tiny["success_rate"] < big["success_rate"]
    assert big == again
    assert big["rows"] == 100 and big["eps"] == 1.0 and big["queries"] == 100
    assert big["broken"] == round(big["success_rate"] * 100)


def test_inputs_the_contract_rejects_are_sanitised_not_successes(
    two_versions: Registry, holdout: pd.DataFrame
) -> None:
    version = two_versions.get("credit:1")
    tight = version.contract
    for name in ("debt_ratio", "age", "months_employed"):
        feature = tight.feature(name)
        tight = tight.replace_feature(name, on_out_of_range="reject", min=feature.min, max=feature.max)
    two_versions.edit_contract("credit:1", tight)  # credit:3, same model, a strict door
    loose = _robust(two_versions, "credit:1", holdout, eps=2.0, attack_rows=100)
    strict = _robust(two_versions, "credit:3", holdout, eps=2.0, attack_rows=100)
    assert loose["attack"]["sanitised_queries"] == 0
    assert strict["attack"]["sanitised_queries"] > 0
    assert strict["attack"]["sanitised_share"] > 0
    assert strict["noise"]["sanitised"] >= 0
    # Every example the attack counts as a success is one the strict contract accepts.
    model = two_versions.load("credit:3")
    rows, labels = adversarial_examples(
        model, holdout.drop(columns=["default"]).iloc[:150], holdout["default"].iloc[:150], eps=2.0
    )
    assert rows.n_rows > 0
    assert model.validate(rows).ok
    assert (model.predict(rows).values != labels).all()


def test_adversarial_examples_only_for_classifiers(sqlite_registry: Registry) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    sqlite_registry.register(Ridge().fit(X, y), name="d", train_data=X.assign(t=y), target="t")
    with pytest.raises(EvaluationError, match="apply to classifiers"):
        adversarial_examples(sqlite_registry.load("d:1"), X, y)


def test_adversarial_training_recipe_makes_a_version_to_evaluate(
    two_versions: Registry, credit: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    from shipyard.datasets import fit_credit_model

    loaded = two_versions.load("credit:1")
    features, labels = credit.drop(columns=["default"]), credit["default"]
    rows, adv_labels = adversarial_examples(loaded, features.iloc[:300], labels.iloc[:300], eps=0.5)
    augmented = pd.concat(
        [credit, rows.to_pandas().assign(default=adv_labels.astype(np.int64))], ignore_index=True
    )
    hardened = two_versions.register(
        fit_credit_model(augmented),
        name="credit",
        train_data=credit,
        target="default",
        tags={"recipe": "adversarial-training"},
    )
    before = _robust(two_versions, "credit:1", holdout, eps=0.5)["attack"]["success_rate"]
    after = _robust(two_versions, str(hardened.ref), holdout, eps=0.5)["attack"]["success_rate"]
    assert 0.0 <= after <= 1.0 and 0.0 <= before <= 1.0
