"""What a version keeps of its explanations from registration: a seeded background sample without
pii values, and its global importance (or why there is none)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from shipyard import Registry
from shipyard.attribution.summary import BACKGROUND_ROWS, background_of, draw_background
from shipyard.core.batch import Batch
from shipyard.core.contract import Contract, example_row

FEATURES = ["a", "b", "c"]


def train(n: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(50, 10, n), "c": rng.normal(size=n)})
    frame["y"] = (frame["a"] + 0.02 * (frame["b"] - 50) + 0.1 * rng.normal(size=n) > 0).astype(int)
    return frame


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    frame = train()
    return LogisticRegression().fit(frame[FEATURES], frame["y"])


def with_pii(contract: Contract, name: str) -> Contract:
    return replace(contract, features=tuple(replace(f, pii=f.name == name) for f in contract.features))


class Lookup:
    """A custom model that answers only rows it was given in training: it predicts, but no
    explainer (which asks about rows mixed from others) can explain it."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.known = {tuple(r): int(y) for r, y in zip(frame[FEATURES].to_numpy(), frame["y"], strict=True)}

    def predict(self, frame: pd.DataFrame) -> Any:
        return np.array([self.known[tuple(r)] for r in frame[FEATURES].to_numpy()])


def test_the_background_is_a_seeded_sample_of_at_most_100_rows(
    sqlite_registry: Registry, model: LogisticRegression
) -> None:
    sqlite_registry.register(model, name="m", train_data=train(), target="y")
    sqlite_registry.register(model, name="m", train_data=train(), target="y")
    first, second = (sqlite_registry.get(f"m:{v}").explanation for v in (1, 2))
    assert first is not None and second is not None
    assert first["background_rows"] == BACKGROUND_ROWS == len(first["background"]["a"])
    assert first["background"] == second["background"] and first["seed"] == 0
    contract = sqlite_registry.get("m:1").contract
    small = draw_background(contract, Batch.from_pandas(train(30)[FEATURES]))
    assert small.n_rows == 30  # all of fewer rows, in their order
    restored = background_of(contract, first)
    assert restored is not None and restored.n_rows == BACKGROUND_ROWS


def test_importance_has_one_value_per_contract_feature(sqlite_registry: Registry, model: Any) -> None:
    version = sqlite_registry.register(model, name="m", train_data=train(), target="y")
    assert version.explanation is not None and "importance_error" not in version.explanation
    importance = version.importance
    assert importance is not None and list(importance) == list(version.contract.names)
    assert all(v >= 0 for v in importance.values()) and importance["a"] > importance["c"]
    assert version.explanation["method"] and version.explanation["space"] in ("probability", "log_odds")
    assert 0 < version.explanation["importance_rows"] <= 200


def test_pii_features_keep_the_example_value_not_training_values(
    sqlite_registry: Registry, model: LogisticRegression
) -> None:
    plain = sqlite_registry.register(model, name="m", train_data=train(), target="y")
    contract = with_pii(plain.contract, "b")
    masked = sqlite_registry.register(model, name="m", train_data=train(), target="y", contract=contract)
    assert masked.explanation is not None
    stored = masked.explanation["background"]
    assert set(stored["b"]) == {example_row(contract)["b"]} and len(stored["b"]) == BACKGROUND_ROWS
    assert not set(stored["b"]) & set(train()["b"])
    assert masked.explanation["background"]["a"] == plain.explanation["background"]["a"]  # type: ignore[index]


def test_a_contract_edit_carries_the_summary_without_the_new_pii_values(
    sqlite_registry: Registry, model: LogisticRegression
) -> None:
    base = sqlite_registry.register(model, name="m", train_data=train(), target="y")
    edited = sqlite_registry.edit_contract("m:1", with_pii(base.contract, "a"))
    assert edited.explanation is not None and base.explanation is not None
    assert edited.importance == base.importance
    assert set(edited.explanation["background"]["a"]) == {example_row(edited.contract)["a"]}
    assert edited.explanation["background"]["b"] == base.explanation["background"]["b"]


def test_a_model_no_explainer_can_read_still_registers_and_says_why(sqlite_registry: Registry) -> None:
    frame = train()
    version = sqlite_registry.register(
        Lookup(frame), name="lookup", train_data=frame, target="y", trust_pickle=True
    )
    assert version.explanation is not None and version.importance is None
    assert version.explanation["importance_error"]
    assert version.explanation["background_rows"] == BACKGROUND_ROWS


def test_a_version_without_training_data_has_no_summary(
    sqlite_registry: Registry, model: LogisticRegression
) -> None:
    base = sqlite_registry.register(model, name="m", train_data=train(), target="y")
    bare = sqlite_registry.register(model, name="m", contract=base.contract)
    assert bare.explanation is None and bare.importance is None
    assert "importance" not in bare.to_dict()
