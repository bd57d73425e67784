"""The registry on SQLite and PostgreSQL (the `registry` fixture runs each test on both): reading,
loading, editing contracts, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard import (
    ArtifactIntegrityError,
    ContractError,
    ContractViolationError,
    Registry,
    UnknownFlavorError,
)


def test_loaded_model_predicts_like_the_original(
    registry: Registry, v1: Any, cancer_model: Any, cancer: pd.DataFrame
) -> None:
    features = cancer.drop(columns=["label"])
    predictions = registry.load("cancer:1").predict(features)
    np.testing.assert_allclose(predictions.probabilities, cancer_model.predict_proba(features))


def test_contract_edit_makes_a_new_version_with_the_same_artifact(registry: Registry, v1: Any) -> None:
    edited = v1.contract.replace_feature("mean radius", on_out_of_range="reject")
    v2 = registry.edit_contract("cancer:1", edited)
    assert v2.version == 2
    assert v2.artifact_digest == v1.artifact_digest
    assert v2.lineage["derived_from"] == "cancer:1"
    assert registry.get("cancer:1").contract == v1.contract
    row = {f.name: f.min for f in v1.contract.features} | {"mean radius": 1000.0}
    assert registry.load("cancer:1").validate([row]).ok
    with pytest.raises(ContractViolationError, match="mean radius"):
        registry.load("cancer:2").predict([row])


def test_contract_edit_cannot_change_the_features(registry: Registry, v1: Any) -> None:
    from dataclasses import replace

    fewer = replace(v1.contract, features=v1.contract.features[1:])
    with pytest.raises(ContractError, match="may change rules, not features"):
        registry.edit_contract("cancer:1", fewer)


def test_object_that_is_not_a_model_is_refused(registry: Registry, cancer: pd.DataFrame) -> None:
    with pytest.raises(UnknownFlavorError, match="no flavor accepts"):
        registry.register(object(), name="x", train_data=cancer, target="label")
    with pytest.raises(UnknownFlavorError, match="unknown flavor 'tensorflow'"):
        registry.register(object(), name="x", flavor="tensorflow")
    assert registry.list_models() == []


def test_tampered_artifact_is_refused_on_load(registry: Registry, v1: Any) -> None:
    path = Path(registry.artifacts.path_of(v1.artifact_digest))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="refusing to load"):
        registry.load("cancer:1")
