"""The drift verdict is weighted by the version's importance stored at registration; a version
without one gets an unweighted verdict, and the report says why."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from shipyard import Registry, Settings
from shipyard.monitoring.events import EventLog
from shipyard.monitoring.importance import weights_of
from shipyard.monitoring.monitor import monitor_report
from shipyard.monitoring.report import render_report
from traffic import queue_requests


def frame(n: int, *, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.normal(size=n), "c": rng.normal(size=n)})
    data["default"] = (data["a"] + 0.3 * data["b"] + 0.1 * rng.normal(size=n) > shift).astype(int)
    return data


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Registry]:
    """credit:1, a classifier on a, b, c (a matters most) registered with its training data;
    credit:2, the same model registered with a contract only."""
    train = frame(80, seed=0)
    model = LogisticRegression().fit(train[["a", "b", "c"]], train["default"])
    with Registry(Settings.for_home(tmp_path / "home"), actor="tester") as registry:
        registry.register(model, name="credit", train_data=train, target="default")
        registry.register(model, name="credit", contract=registry.get("credit:1").contract)
        yield registry


def test_the_stored_importance_weights_the_verdict_and_the_model_is_not_loaded(reg: Registry) -> None:
    version = reg.get("credit:1")
    weights = weights_of(version)
    assert weights.importance == version.importance and weights.source == "registration"
    assert weights.importance is not None and max(weights.importance, key=weights.importance.get) == "a"
    assert version.explanation is not None and weights.method == version.explanation["method"]
    log = EventLog(reg.settings.store_url)
    queue_requests(log, reg, frame(300, seed=3, shift=1.5))  # 'a' drifts
    log.flush()
    report = monitor_report(reg, "credit:1", window=timedelta(hours=1), resamples=0)
    assert report.drift is not None and report.drift.weighted
    shares = {c.name: c.importance for c in report.drift.features}
    assert shares["a"] is not None and shares["a"] == max(s or 0 for s in shares.values())
    assert report.to_dict()["importance"] == {"weighted": True, "source": "registration",
                                              "method": weights.method, "note": None}  # fmt: skip
    assert f"weighted by importance at registration, {weights.method}" in render_report(report.to_dict())
    given = monitor_report(reg, "credit:1", window=timedelta(hours=1), resamples=0, importance={"b": 1.0})
    assert given.weights.source == "given" and given.drift is not None and given.drift.weighted


def test_a_version_without_a_stored_importance_is_unweighted_and_says_why(reg: Registry) -> None:
    bare = reg.get("credit:2")
    assert bare.explanation is None and bare.importance is None
    weights = weights_of(bare)
    assert weights.importance is None and weights.source is None
    assert weights.note == (
        "unweighted: credit:2 it has no stored importance (registered without training data, or "
        "before importances were kept)"
    )
    failed = replace(bare, explanation={"background": {}, "importance_error": "the model cannot be read"})
    assert weights_of(failed).note == (
        "unweighted: credit:2 its importance could not be computed at registration: the model cannot be read"
    )
