"""The LightGBM flavor: the booster's text with the wrapper's classes; strings become its categories."""

from __future__ import annotations

import lightgbm
import numpy as np
import pandas as pd
import pytest

from shipyard.core.batch import Batch
from shipyard.errors import FlavorError
from shipyard.flavors.base import LoadOptions
from shipyard.flavors.lightgbm import LightGBMFlavor

FLAVOR = LightGBMFlavor()


def _frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=300), "c": pd.Categorical(rng.choice(["low", "mid", "high"], size=300))}
    )
    y = ((frame["x"] > 0) ^ (frame["c"] == "high")).map({True: "yes", False: "no"})
    return frame, y


def test_wrappers_and_boosters_are_accepted_other_objects_not() -> None:
    frame, y = _frame()
    model = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1, n_jobs=1).fit(frame, y)
    assert FLAVOR.accepts(model) and FLAVOR.accepts(model.booster_)
    assert not FLAVOR.accepts(lightgbm.LGBMClassifier())  # not fitted: no booster yet
    assert not FLAVOR.accepts(object())


def test_a_classifier_keeps_its_classes_and_reads_strings_as_its_categories() -> None:
    frame, y = _frame()
    model = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1, n_jobs=1).fit(frame, y)
    saved = FLAVOR.save(model)
    assert list(saved.files) == ["model.txt"] and saved.meta["classes"] == ["no", "yes"]
    batch = Batch.from_columns({"x": frame["x"].to_numpy(), "c": frame["c"].astype(object).to_numpy()})
    predictions = FLAVOR.load(saved, LoadOptions()).predict(batch)
    np.testing.assert_allclose(predictions.probabilities, model.predict_proba(frame), rtol=1e-9)
    assert predictions.values.tolist() == model.predict(frame).tolist()


def test_a_regressor_predicts_values() -> None:
    frame, _ = _frame()
    X = frame[["x"]]
    model = lightgbm.LGBMRegressor(n_estimators=5, verbose=-1, n_jobs=1).fit(X, X["x"] * 2)
    saved = FLAVOR.save(model)
    assert saved.meta["task"] == "regression"
    predictions = FLAVOR.load(saved, LoadOptions()).predict(Batch.from_pandas(X.head(5)))
    assert predictions.task == "regression"
    np.testing.assert_allclose(predictions.values, model.predict(X.head(5)))


def test_bytes_that_are_not_a_lightgbm_model_are_refused() -> None:
    with pytest.raises(FlavorError, match="not a LightGBM model"):
        FLAVOR.read_file(b"\xff\xfe not text", LoadOptions())
