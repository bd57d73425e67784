"""Pickle and joblib files: refused unless trusted, then stored through a safe flavor where one fits."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shipyard import FlavorError, Registry, UntrustedArtifactError
from shipyard.errors import SignatureError
from shipyard.security.signing import SigningKey


def test_pickle_files_are_refused(tmp_path: Path, sqlite_registry: Registry) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(FlavorError, match="pickle"):
        sqlite_registry.register_file(path, name="p")


@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_a_trusted_pickle_file_is_stored_through_skops_and_loads_without_pickle(
    tmp_path: Path, sqlite_registry: Registry, cancer: pd.DataFrame, cancer_model: Any, suffix: str
) -> None:
    import pickle
    import zipfile

    import joblib

    path = tmp_path / f"model{suffix}"
    if suffix == ".joblib":
        joblib.dump(cancer_model, path)
    else:
        path.write_bytes(pickle.dumps(cancer_model))
    with pytest.raises(UntrustedArtifactError, match="trust_pickle=True"):
        sqlite_registry.register_file(path, name="imported", train_data=cancer, target="label")
    assert sqlite_registry.list_models() == []
    version = sqlite_registry.register_file(
        path, name="imported", train_data=cancer, target="label", trust_pickle=True
    )
    assert version.flavor == "sklearn"
    artifact = sqlite_registry.artifacts.get(version.artifact_digest)
    with zipfile.ZipFile(io.BytesIO(artifact)) as archive:
        assert "model.skops" in archive.namelist()
    loaded = sqlite_registry.load("imported:1")  # no trust_pickle, no signature: it is skops now
    X = cancer.drop(columns=["label"]).head(20)
    assert loaded.predict(X).values.tolist() == cancer_model.predict(X).tolist()


def test_a_trusted_pickle_of_custom_code_stays_a_pickle_that_needs_a_signature(
    tmp_path: Path, sqlite_registry: Registry, signing_key: SigningKey, custom_model: Any
) -> None:
    import cloudpickle

    frame = pd.DataFrame({"a": [1.0, 2.0], "y": [1.0, 2.0]})
    path = tmp_path / "custom.pkl"
    path.write_bytes(cloudpickle.dumps(custom_model))
    sqlite_registry.register_file(path, name="custom", train_data=frame, target="y", trust_pickle=True)
    assert sqlite_registry.get("custom:1").flavor == "pyfunc"
    with pytest.raises(SignatureError, match="not signed"):
        sqlite_registry.load("custom:1", trust_pickle=True)
    sqlite_registry.signatures.sign("custom:1", signing_key)
    assert sqlite_registry.load("custom:1", trust_pickle=True).predict(frame[["a"]]).values.tolist() == [
        1.0,
        2.0,
    ]
