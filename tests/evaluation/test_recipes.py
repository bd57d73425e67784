"""The mitigation and adversarial-training recipes of docs/evaluation.md, run end to end."""

from __future__ import annotations

import pandas as pd

from shipyard import Registry, evaluate, reweighing_weights
from shipyard.datasets import fit_credit_model
from shipyard.security.signing import SigningKey


class FairCredit:
    """The docs' wrapper: Fairlearn's ThresholdOptimizer reading the sensitive feature from the row."""

    def __init__(self, optimizer: object) -> None:
        self.optimizer = optimizer
        self.classes_ = optimizer.estimator.classes_  # type: ignore[attr-defined]

    def predict(self, frame: pd.DataFrame) -> object:
        return self.optimizer.predict(
            frame,
            sensitive_features=frame["country"],  # type: ignore[attr-defined]
            random_state=0,
        )


def test_reweighing_recipe_registers_a_version_to_evaluate(
    sqlite_registry: Registry, credit: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    weights = reweighing_weights(credit["country"], credit["default"])
    pipeline = fit_credit_model(credit)
    pipeline.fit(credit.drop(columns=["default"]), credit["default"], boost__sample_weight=weights)
    v = sqlite_registry.register(
        pipeline, name="credit", train_data=credit, target="default", tags={"mitigation": "reweighing"}
    )
    result = evaluate(
        str(v.ref),
        holdout,
        target="default",
        sensitive=["country"],
        robust=False,
        resamples=0,
        registry=sqlite_registry,
    )
    assert "demographic_parity_difference" in result.fairness["country"]


def test_threshold_optimizer_recipe_registers_a_version_to_evaluate(
    sqlite_registry: Registry,
    credit: pd.DataFrame,
    credit_pipeline: object,
    holdout: pd.DataFrame,
    signing_key: SigningKey,
) -> None:
    from fairlearn.postprocessing import ThresholdOptimizer

    X, y = credit.drop(columns=["default"]), credit["default"]
    optimizer = ThresholdOptimizer(
        estimator=credit_pipeline, constraints="equalized_odds", predict_method="predict_proba", prefit=True
    )
    optimizer.fit(X, y, sensitive_features=X["country"])
    v = sqlite_registry.register(
        FairCredit(optimizer),
        name="credit",
        train_data=credit,
        target="default",
        task="classification",
        trust_pickle=True,
    )
    sqlite_registry.signatures.sign(v.ref, signing_key)  # custom code loads only when signed
    result = evaluate(
        str(v.ref),
        holdout,
        target="default",
        sensitive=["country"],
        robust=False,
        resamples=0,
        trust_pickle=True,
        registry=sqlite_registry,
    )
    assert result.fairness["country"]["equalized_odds_difference"] is not None
    assert "roc_auc" not in result.metrics  # labels only: a metric that needs scores is absent
