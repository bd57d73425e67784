"""Custom Python models (pyfunc): registered and loaded only when trusted, and loaded only when signed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard import Registry, UntrustedArtifactError
from shipyard.core.batch import Batch
from shipyard.errors import PredictionError, SignatureError
from shipyard.flavors.base import LoadOptions
from shipyard.flavors.pyfunc import PyFuncFlavor, PyFuncPredictor
from shipyard.security.signing import SigningKey, new_signing_key


def test_custom_code_needs_trust_and_a_trusted_signature_to_load(
    sqlite_registry: Registry, signing_key: SigningKey, tmp_path: Path, custom_model: Any
) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "y": [1.0, 2.0]})
    with pytest.raises(UntrustedArtifactError, match="trust_pickle=True"):
        sqlite_registry.register(custom_model, name="custom", train_data=frame, target="y")
    sqlite_registry.register(custom_model, name="custom", train_data=frame, target="y", trust_pickle=True)
    with pytest.raises(UntrustedArtifactError, match="runs its code"):
        sqlite_registry.load("custom:1")
    with pytest.raises(SignatureError, match="custom:1 is not signed"):
        sqlite_registry.load("custom:1", trust_pickle=True)
    new_signing_key(tmp_path / "stranger.pem")
    sqlite_registry.signatures.sign("custom:1", SigningKey.from_file(tmp_path / "stranger.pem"))
    with pytest.raises(SignatureError, match="signed only by untrusted key"):
        sqlite_registry.load("custom:1", trust_pickle=True)
    sqlite_registry.signatures.sign("custom:1", signing_key)
    assert sqlite_registry.load("custom:1", trust_pickle=True).predict(frame[["a"]]).values.tolist() == [
        1.0,
        2.0,
    ]


def test_any_object_with_predict_is_accepted_and_saved_with_its_class_name(custom_model: Any) -> None:
    flavor = PyFuncFlavor()
    assert flavor.accepts(custom_model) and not flavor.accepts(object())
    saved = flavor.save(custom_model)
    assert list(saved.files) == ["model.cloudpickle"]
    assert saved.meta == {"framework": "python", "class": "Custom"}


def test_unpickling_needs_both_trust_and_a_signature(custom_model: Any) -> None:
    flavor = PyFuncFlavor()
    saved = flavor.save(custom_model)
    with pytest.raises(UntrustedArtifactError, match="trust_pickle=True"):
        flavor.load(saved, LoadOptions(signed=True))
    with pytest.raises(UntrustedArtifactError, match="signed by a trusted key"):
        flavor.load(saved, LoadOptions(trust_pickle=True))
    predictor = flavor.load(saved, LoadOptions(trust_pickle=True, signed=True))
    assert predictor.predict(Batch.from_columns({"a": [1.0, 2.0]})).values.tolist() == [1.0, 2.0]


class WrongShape:
    def predict(self, frame: pd.DataFrame) -> Any:
        return np.zeros((len(frame), 2))


class Failing:
    def predict(self, frame: pd.DataFrame) -> Any:
        raise RuntimeError("no model here")


def test_a_custom_predict_that_fails_or_gives_the_wrong_shape_is_named() -> None:
    batch = Batch.from_columns({"a": [1.0, 2.0]})
    with pytest.raises(PredictionError, match=r"returned shape \(2, 2\); expected 2 values"):
        PyFuncPredictor(WrongShape(), {}).predict(batch)
    with pytest.raises(PredictionError, match="predict raised: RuntimeError"):
        PyFuncPredictor(Failing(), {}).predict(batch)


def test_a_custom_classifier_with_predict_proba_gives_labels_from_its_probabilities() -> None:
    class Scorer:
        classes_ = np.array(["no", "yes"])

        def predict(self, frame: pd.DataFrame) -> Any:
            return np.array(["no"] * len(frame))

        def predict_proba(self, frame: pd.DataFrame) -> Any:
            return np.column_stack([1 - frame["a"], frame["a"]])

    saved = PyFuncFlavor().save(Scorer())
    assert saved.meta["classes"] == ["no", "yes"] and saved.meta["task"] == "classification"
    predictions = PyFuncPredictor(Scorer(), dict(saved.meta)).predict(Batch.from_columns({"a": [0.2, 0.9]}))
    assert predictions.values.tolist() == ["no", "yes"]
