"""A model's own importance per feature: tree importances, |coef| of linear models, none otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shipyard import Registry
from shipyard.monitoring.importance import importance_of, model_importance


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    frame["y"] = (frame["a"] + 0.1 * rng.normal(size=300) > 0).astype(int)
    return frame


def test_trees_and_linear_pipelines_have_one_importance_per_feature(sqlite_registry: Registry) -> None:
    frame = _frame()
    X, y = frame[["a", "b"]], frame["y"]
    sqlite_registry.register(RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y), name="rf",
                             train_data=frame, target="y")  # fmt: skip
    sqlite_registry.register(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), name="lr",
                             train_data=frame, target="y")  # fmt: skip
    for name in ("rf", "lr"):
        importance = model_importance(sqlite_registry.load(f"{name}:1"))
        assert importance is not None and set(importance) == {"a", "b"}
        assert importance["a"] > importance["b"]
    assert importance_of(sqlite_registry, sqlite_registry.get("lr:1")) == model_importance(
        sqlite_registry.load("lr:1")
    )
