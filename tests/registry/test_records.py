"""A version's record as JSON-safe data shows the importance stored at registration."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

from shipyard import Registry


def test_to_dict_shows_the_stored_importance_and_its_method(sqlite_registry: Registry) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    frame["v"] = 3.0 * frame["a"] + 0.1 * frame["b"]
    model = LinearRegression().fit(frame[["a", "b"]], frame["v"])
    version = sqlite_registry.register(model, name="lin", train_data=frame, target="v")
    data = json.loads(json.dumps(sqlite_registry.get("lin:1").to_dict()))
    assert data["importance"] == version.importance and set(data["importance"]) == {"a", "b"}
    assert data["importance"]["a"] > data["importance"]["b"] > 0
    assert data["importance_method"] == version.explanation["method"]  # type: ignore[index]
    assert "background" not in json.dumps(data)  # the sample stays in the store, not in listings
