"""The evaluation's explanations: the stored importance and a seeded, explained sample of the
holdout, kept with the result and drawn in the report as bars and a SHAP summary plot."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from shipyard import Registry
from shipyard.core.attribution_charts import value_color
from shipyard.evaluation.evaluate import evaluate
from shipyard.evaluation.explanations import holdout_explanations, top_features
from shipyard.evaluation.report import render_report
from shipyard.evaluation.result import Evaluation

FEATURES = ["a", "b", "color"]


def rows(n: int, *, seed: int, classes: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "a": rng.normal(size=n), "b": rng.normal(size=n), "color": rng.choice(["red", "green", "blue"], n),
    })  # fmt: skip
    score = 2 * frame["a"] + (frame["color"] == "red") + 0.3 * rng.normal(size=n)
    frame["y"] = np.digitize(score, [0.0] if classes == 2 else [-1.0, 1.0])
    return frame


def fitted(frame: pd.DataFrame) -> Any:
    front = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["color"]), remainder="passthrough"
    )
    return make_pipeline(front, LogisticRegression()).fit(frame[FEATURES], frame["y"])


@pytest.fixture
def reg(sqlite_registry: Registry) -> Registry:
    """m:1, a binary classifier on a, b and color registered with its training data."""
    train = rows(80, seed=0)
    sqlite_registry.register(fitted(train), name="m", train_data=train, target="y")
    return sqlite_registry


def run(reg: Registry, ref: str, data: pd.DataFrame, **options: Any) -> Evaluation:
    return evaluate(ref, data, target="y", registry=reg, robust=False, resamples=0, champion=None, **options)


def test_a_seeded_sample_is_explained_and_kept_with_the_stored_importance(reg: Registry) -> None:
    holdout = rows(400, seed=1)
    result = run(reg, "m:1", holdout)
    found = result.explanations
    assert "error" not in found and found["output"] == "1" and found["space"] == "log_odds"
    assert found["method"] == "linear"
    n = found["rows"]
    assert 0 < n <= 300 and found["seed"] == 0 and found["background"] == "registration"
    assert found["additivity"] <= 1e-6
    assert found["registration"]["importance"] == reg.get("m:1").importance
    names = [f["name"] for f in found["features"]]
    means = [f["mean_abs"] for f in found["features"]]
    assert sorted(names) == sorted(FEATURES) and means == sorted(means, reverse=True)
    assert names[0] == "a" and list(found["importance"]) == names and top_features(found, 1) == ["a"]
    for feature in found["features"]:
        assert len(feature["attributions"]) == len(feature["colors"]) == n
    a = next(f for f in found["features"] if f["name"] == "a")
    color = next(f for f in found["features"] if f["name"] == "color")
    assert a["kind"] == "numeric" and min(a["colors"]) == 0.0 and max(a["colors"]) == 1.0
    # a pushes the positive class up: the higher a, the larger its attribution (red on the right)
    assert np.corrcoef(a["colors"], pd.Series(a["attributions"]).rank())[0, 1] > 0.9
    assert color["kind"] == "categorical" and sorted(color["categories"]) == ["blue", "green", "red"]
    assert set(color["colors"]) == {0, 1, 2}
    again = run(reg, "m:1", holdout)
    assert again.explanations == found  # seeded
    stored = Evaluation.from_record(reg.results.evaluations("m:1", limit=1)[0])
    assert stored.explanations == json.loads(json.dumps(found))


def test_rejected_rows_are_not_explained_and_pii_values_are_not_kept(reg: Registry) -> None:
    holdout = rows(40, seed=2)
    holdout["a"] = holdout["a"].astype(object)
    holdout.loc[[3, 5], "a"] = "n/a"
    contract = reg.get("m:1").contract
    masked = replace(contract, features=tuple(replace(f, pii=f.name == "b") for f in contract.features))
    reg.edit_contract("m:1", masked)
    loaded = reg.load("m:2")
    batch = loaded.validate(holdout).batch  # as evaluate reads it
    found = holdout_explanations(loaded, batch, seed=3)
    assert found["rows"] <= 38
    b = next(f for f in found["features"] if f["name"] == "b")
    assert b["kind"] == "hidden" and set(b["colors"]) == {None}


def test_a_multiclass_model_shows_each_rows_predicted_class(sqlite_registry: Registry) -> None:
    train = rows(90, seed=0, classes=3)
    sqlite_registry.register(fitted(train), name="three", train_data=train, target="y")
    found = run(sqlite_registry, "three:1", rows(60, seed=4, classes=3)).explanations
    assert found["output"] == "the predicted class" and found["rows"] > 0


def test_a_version_without_training_data_is_explained_on_a_holdout_background(reg: Registry) -> None:
    version = reg.register(fitted(rows(80, seed=0)), name="bare", contract=reg.get("m:1").contract)
    assert version.explanation is None
    found = run(reg, "bare:1", rows(50, seed=5)).explanations
    assert found["background"] == "holdout" and found["rows"] > 0
    assert found["registration"]["importance"] is None
    assert "registered without training data" in found["registration"]["error"]
    assert run(reg, "bare:1", rows(50, seed=5), explain=False).explanations == {}


def test_the_report_draws_the_stored_importance_and_the_summary_plot(reg: Registry) -> None:
    result = run(reg, "m:1", rows(120, seed=6))
    html = render_report(result)
    assert "<h2>Explanations</h2>" in html
    assert "Global importance at registration (mean |attribution|," in html
    assert "SHAP summary on" in html and html.count("<circle") >= 3 * result.explanations["rows"]
    assert f"fill='{value_color(1.0)}'" in html and f"fill='{value_color(0.0)}'" in html
    assert value_color(0.0) == "#008aff" and value_color(1.0) == "#ff0052" and value_color(None) == "#c9ced4"
    assert "<b>color</b>" in html  # the categories' colours are named
    bare = render_report(replace(result, explanations={}))
    assert "not computed (--no-explain)" in bare
