"""`evaluate`: metrics through the contract, checked against scikit-learn and Fairlearn; bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from shipyard import EvaluationError, InputError, Registry, evaluate


def _sk_predictions(model: Any, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    features = frame.drop(columns=["default"])
    return model.predict(features), model.predict_proba(features)


def test_stored_numbers_equal_scikit_learn(
    two_versions: Registry, holdout: pd.DataFrame, credit_pipeline: Any
) -> None:
    result = evaluate(
        "credit:1", holdout, target="default", robust=False, resamples=0, threshold=0.3, registry=two_versions
    )
    stored = two_versions.results.evaluations("credit:1")[0].body["metrics"]
    pred, proba = _sk_predictions(credit_pipeline, holdout)
    y = holdout["default"].to_numpy()
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "f1": skm.f1_score(y, pred),
        "f1_macro": skm.f1_score(y, pred, average="macro"),
        "f1_weighted": skm.f1_score(y, pred, average="weighted"),
        "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
        "pr_auc": skm.average_precision_score(y, proba[:, 1]),
        "log_loss": skm.log_loss(y, proba),
        "brier": skm.brier_score_loss(y, proba[:, 1]),
    }
    for name, value in expected.items():
        assert stored[name] == pytest.approx(value, abs=1e-12), name
        assert result.metrics[name] == stored[name]
    assert stored["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    at = (proba[:, 1] >= 0.3).astype(int)
    assert stored["at_threshold"]["recall"] == pytest.approx(skm.recall_score(y, at))
    assert result.data["evaluated"] == len(holdout) and result.data["rejected"] == 0


def test_bootstrap_intervals_are_seeded_and_bracket_the_point(
    two_versions: Registry, holdout: pd.DataFrame
) -> None:
    runs = [
        evaluate(
            "credit:1",
            holdout,
            target="default",
            robust=False,
            resamples=50,
            seed=s,
            store=False,
            registry=two_versions,
        )
        for s in (4, 4, 5)
    ]
    assert runs[0].confidence == runs[1].confidence
    assert runs[0].confidence != runs[2].confidence
    for name in ("accuracy", "f1_macro", "roc_auc", "brier"):
        ci = runs[0].confidence[name]
        assert ci["low"] <= runs[0].metrics[name] <= ci["high"]
        assert ci["resamples"] == 50 and ci["level"] == 0.95


def test_slices_count_every_row_and_match_scikit_learn_per_group(
    two_versions: Registry, holdout: pd.DataFrame, credit_pipeline: Any
) -> None:
    result = evaluate(
        "credit:1",
        holdout,
        target="default",
        slices=["employment", "age:18,30,50"],
        robust=False,
        resamples=0,
        store=False,
        registry=two_versions,
    )
    pred, proba = _sk_predictions(credit_pipeline, holdout)
    y = holdout["default"].to_numpy()
    employment = result.slices["employment"]
    assert employment["kind"] == "categorical"
    assert sum(g["rows"] for g in employment["groups"]) == len(holdout)
    for group in employment["groups"]:
        rows = (holdout["employment"] == group["value"]).to_numpy()
        assert group["rows"] == rows.sum()
        assert group["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(y[rows], pred[rows]))
        if len(set(y[rows])) == 2:
            assert group["metrics"]["roc_auc"] == pytest.approx(skm.roc_auc_score(y[rows], proba[rows, 1]))
    ages = result.slices["age:18,30,50"]
    assert ages["kind"] == "binned"
    assert [g["value"] for g in ages["groups"]][:2] == ["[18, 30)", "[30, 50)"]
    assert sum(g["rows"] for g in ages["groups"]) == len(holdout)
    young = ((holdout["age"] >= 18) & (holdout["age"] < 30)).to_numpy()
    assert ages["groups"][0]["rows"] == young.sum()
    assert ages["groups"][0]["metrics"]["f1"] == pytest.approx(skm.f1_score(y[young], pred[young]))


def test_fairness_through_evaluate_equals_fairlearn(
    two_versions: Registry, holdout: pd.DataFrame, credit_pipeline: Any
) -> None:
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
    )

    result = evaluate(
        "credit:1",
        holdout,
        target="default",
        sensitive=["country"],
        robust=False,
        resamples=0,
        store=False,
        registry=two_versions,
    )
    pred, _ = _sk_predictions(credit_pipeline, holdout)
    y, groups = holdout["default"], holdout["country"]
    fair = result.fairness["country"]
    assert fair["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=groups)
    )
    assert fair["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(y, pred, sensitive_features=groups)
    )
    assert fair["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=groups)
    )
    assert set(fair["groups"]) == set(groups)


def test_champion_is_evaluated_on_the_same_rows_and_both_are_stored(
    two_versions: Registry, holdout: pd.DataFrame
) -> None:
    two_versions.set_alias("credit:1", "production", force=True, reason="test set-up")
    result = evaluate("credit:2", holdout, target="default", robust=False, resamples=0, registry=two_versions)
    assert result.champion is not None and result.champion.ref == "credit:1"
    assert result.champion.data["fingerprint"] == result.data["fingerprint"]
    assert result.metrics["roc_auc"] != result.champion.metrics["roc_auc"]
    champion_records = two_versions.results.evaluations("credit:1")
    assert [r.id for r in champion_records] == [result.champion.id]
    assert two_versions.results.evaluations("credit:2")[0].body["champion_ref"]["ref"] == "credit:1"


def test_a_regressor_gets_regression_metrics_equal_to_scikit_learn(sqlite_registry: Registry) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge().fit(X, y)
    sqlite_registry.register(model, name="diabetes", train_data=X.assign(target=y), target="target")
    result = evaluate(
        "diabetes:1", X.assign(target=y), target="target", sensitive=["sex"], registry=sqlite_registry
    )
    pred = model.predict(X)
    assert result.metrics["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert result.metrics["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert result.metrics["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert result.metrics["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))
    assert result.metrics["residual_quantiles"]["0.5"] == pytest.approx(np.quantile(pred - y, 0.5))
    assert set(result.confidence) == {"mae", "rmse", "r2"}
    assert "relative_change" in result.robustness["noise"]
    assert "skipped" in result.robustness["attack"]
    assert len(result.fairness["sex"]["groups"]) == 2


def test_multiclass_metrics_and_fairness_needs_a_positive_class(sqlite_registry: Registry) -> None:
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_wine(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    frame = X.assign(label=y)
    sqlite_registry.register(model, name="wine", train_data=frame, target="label")
    result = evaluate(
        "wine:1", frame, target="label", robust=False, resamples=0, store=False, registry=sqlite_registry
    )
    proba = model.predict_proba(X)
    assert result.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert set(result.curves["roc"]) == {"0", "1", "2"}
    with pytest.raises(EvaluationError, match="name the positive class"):
        evaluate(
            "wine:1",
            frame,
            target="label",
            sensitive=["alcohol"],
            robust=False,
            resamples=0,
            store=False,
            registry=sqlite_registry,
        )
    named = evaluate(
        "wine:1",
        frame,
        target="label",
        sensitive=["alcohol"],
        positive=2,
        robust=False,
        resamples=0,
        store=False,
        registry=sqlite_registry,
    )
    assert named.fairness["alcohol"]["positive"] == 2
    assert len(named.fairness["alcohol"]["groups"]) == 4  # a numeric feature falls into quartiles


def _stored_count(reg: Registry) -> int:
    return len(reg.results.evaluations("credit:1")) + len(reg.results.evaluations("credit:2"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["default"]), "no target column 'default'"),
        (lambda f: f.assign(default=np.where(f["default"] == 1, "yes", "no")), "never seen"),
        (lambda f: f.assign(default=f["default"] + 5), r"labels \['5', '6'\]"),
        (lambda f: f.assign(default=f["default"].astype(float).where(f.index != 4)), "missing in 1 row"),
        (lambda f: f.iloc[:0], "has no rows"),
    ],
)
def test_bad_data_gets_a_clear_error_and_nothing_is_stored(
    two_versions: Registry, holdout: pd.DataFrame, change: Any, message: str
) -> None:
    with pytest.raises(EvaluationError, match=message):
        evaluate("credit:1", change(holdout), target="default", registry=two_versions)
    assert _stored_count(two_versions) == 0


def test_unknown_sensitive_or_slice_feature_is_named(two_versions: Registry, holdout: pd.DataFrame) -> None:
    with pytest.raises(EvaluationError, match="sensitive feature 'gender' is not in the data"):
        evaluate("credit:1", holdout, target="default", sensitive=["gender"], registry=two_versions)
    with pytest.raises(EvaluationError, match="slice feature 'region' is not in the data"):
        evaluate("credit:1", holdout, target="default", slices=["region"], registry=two_versions)
    with pytest.raises(EvaluationError, match="bin count"):
        evaluate("credit:1", holdout, target="default", slices=["age:many"], registry=two_versions)
    assert _stored_count(two_versions) == 0


def test_evaluates_a_file_and_names_a_missing_one(
    two_versions: Registry, holdout: pd.DataFrame, tmp_path: Path
) -> None:
    holdout.to_csv(tmp_path / "h.csv", index=False)
    result = evaluate(
        "credit:1",
        tmp_path / "h.csv",
        target="default",
        robust=False,
        resamples=0,
        store=False,
        registry=two_versions,
    )
    assert result.data["rows"] == len(holdout) and result.data["source"].endswith("h.csv")
    with pytest.raises(InputError, match="does not exist"):
        evaluate("credit:1", tmp_path / "nope.csv", target="default", registry=two_versions)
