"""The XGBoost flavor: the native UBJSON format with the wrapper's type and classes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.datasets import load_breast_cancer

from shipyard.core.batch import Batch
from shipyard.errors import FlavorError
from shipyard.flavors.base import LoadOptions
from shipyard.flavors.xgboost import XGBoostFlavor

FLAVOR = XGBoostFlavor()


def _cancer() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X.iloc[:, :6], y


def test_wrappers_and_boosters_are_accepted_other_objects_not() -> None:
    assert FLAVOR.accepts(xgboost.XGBClassifier())
    assert FLAVOR.accepts(xgboost.Booster())
    assert not FLAVOR.accepts(object())


def test_a_classifier_keeps_its_wrapper_and_classes() -> None:
    X, y = _cancer()
    model = xgboost.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(X.to_numpy(), y)
    saved = FLAVOR.save(model)
    assert list(saved.files) == ["model.ubj"]
    assert (saved.meta["wrapper"], saved.meta["classes"]) == ("XGBClassifier", [0, 1])
    predictions = FLAVOR.load(saved, LoadOptions()).predict(Batch.from_pandas(X.head(20)))
    np.testing.assert_allclose(
        predictions.probabilities, model.predict_proba(X.head(20).to_numpy()), rtol=1e-6
    )
    assert predictions.values.tolist() == model.predict(X.head(20).to_numpy()).tolist()


def test_a_booster_read_from_a_file_predicts_values() -> None:
    X, y = _cancer()
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(X.to_numpy(), label=y), num_boost_round=3)
    saved = FLAVOR.save(FLAVOR.read_file(bytes(booster.save_raw("ubj")), LoadOptions()))
    assert saved.meta["wrapper"] is None and saved.meta["task"] == "regression"
    predictions = FLAVOR.load(saved, LoadOptions()).predict(Batch.from_pandas(X.head(5)))
    assert predictions.task == "regression"
    np.testing.assert_allclose(predictions.values, booster.inplace_predict(X.head(5).to_numpy()), rtol=1e-6)


def test_string_features_reach_a_model_fitted_on_a_frame_as_categories() -> None:
    frame = pd.DataFrame({"x": np.arange(40.0), "c": pd.Categorical(["a", "b"] * 20)})
    y = (frame["x"] > 20).astype(int)
    model = xgboost.XGBClassifier(n_estimators=3, enable_categorical=True, tree_method="hist", n_jobs=1)
    model.fit(frame, y)
    predictor = FLAVOR.load(FLAVOR.save(model), LoadOptions())
    batch = Batch.from_columns({"x": frame["x"].to_numpy(), "c": frame["c"].astype(object).to_numpy()})
    assert predictor.predict(batch).values.tolist() == model.predict(frame).tolist()


def test_bytes_that_are_not_an_xgboost_model_are_refused() -> None:
    with pytest.raises(FlavorError, match="not an XGBoost model"):
        FLAVOR.read_file(b"not a model", LoadOptions())
