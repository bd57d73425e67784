"""Measuring one version: rows scored through the contract, labels checked, robustness per feature kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard import EvaluationError, Registry, evaluate


def test_rows_the_contract_rejects_are_counted_and_left_out(
    two_versions: Registry, holdout: pd.DataFrame
) -> None:
    bad = holdout.copy()
    bad["country"] = bad["country"].astype(object)
    bad.loc[[3, 5], "age"] = np.nan
    result = evaluate(
        "credit:1", bad, target="default", robust=False, resamples=0, store=False, registry=two_versions
    )
    assert result.data["rejected"] == 2 and result.data["evaluated"] == len(bad) - 2
    assert "age" in result.data["violations"][0]


def test_a_regressor_target_of_text_is_refused(sqlite_registry: Registry) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    sqlite_registry.register(Ridge().fit(X, y), name="diabetes", train_data=X.assign(t=y), target="t")
    with pytest.raises(EvaluationError, match="non-numeric values"):
        evaluate("diabetes:1", X.assign(t="high"), target="t", registry=sqlite_registry)


def test_a_classifier_with_nothing_numeric_reports_no_attack_rate(sqlite_registry: Registry) -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"color": rng.choice(["red", "blue", "green"], 400), "size": rng.choice(["s", "m", "l"], 400)}
    )
    frame["y"] = ((frame["color"] == "red") ^ (rng.random(400) < 0.2)).astype(int)
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["color", "size"])), LogisticRegression()
    ).fit(frame[["color", "size"]], frame["y"])
    sqlite_registry.register(model, name="c", train_data=frame, target="y")
    result = evaluate("c:1", frame, target="y", resamples=0, store=False, registry=sqlite_registry)
    assert "success_rate" not in result.robustness["attack"]
    assert "stability" not in result.robustness["noise"]
    assert "skipped" in result.robustness["attack"] and "skipped" in result.robustness["noise"]
    assert "stability" in result.robustness["swap"]
