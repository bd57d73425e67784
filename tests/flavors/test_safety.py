"""Flavors never run code nobody trusted, and say what to install when a framework is missing."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, ClassifierMixin

from shipyard import FlavorError, Registry, UntrustedArtifactError
from shipyard.errors import SignatureError
from shipyard.flavors import flavor_named
from shipyard.flavors.base import LoadOptions
from shipyard.security.signing import SigningKey, new_signing_key


class HomeMadeClassifier(ClassifierMixin, BaseEstimator):
    """A custom estimator skops cannot vouch for."""

    def fit(self, X: Any, y: Any) -> HomeMadeClassifier:
        self.classes_ = sorted(set(y))
        return self

    def predict(self, X: Any) -> Any:
        return [self.classes_[0]] * len(X)


def test_skops_file_with_an_unknown_type_is_refused_until_trusted(
    tmp_path: Path, sqlite_registry: Registry, cancer: pd.DataFrame
) -> None:
    path = tmp_path / "model.skops"
    X = cancer.drop(columns=["label"])
    sio.dump(HomeMadeClassifier().fit(X, cancer["label"]), path)
    with pytest.raises(UntrustedArtifactError, match="HomeMadeClassifier"):
        sqlite_registry.register_file(path, name="home", train_data=cancer, target="label")
    with pytest.raises(UntrustedArtifactError):
        flavor_named("sklearn").read_file(path.read_bytes(), LoadOptions())


def test_types_trusted_at_registration_are_trusted_again_only_with_a_signature(
    tmp_path: Path, sqlite_registry: Registry, cancer: pd.DataFrame, signing_key: SigningKey
) -> None:
    path = tmp_path / "model.skops"
    X = cancer.drop(columns=["label"])
    sio.dump(HomeMadeClassifier().fit(X, cancer["label"]), path)
    trusted = [t for t in sio.get_untrusted_types(file=path) if "HomeMade" in t]
    sqlite_registry.register_file(path, name="home", train_data=cancer, target="label", trusted_types=trusted)
    with pytest.raises(UntrustedArtifactError, match="only when signed by a trusted key"):
        sqlite_registry.load("home:1")  # a registrant alone cannot widen what every load constructs
    sqlite_registry.signatures.sign("home:1", signing_key)
    assert sqlite_registry.load("home:1").predict(X.head(3)).values.tolist() == [0, 0, 0]


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
    tmp_path: Path, sqlite_registry: Registry, signing_key: SigningKey
) -> None:
    import cloudpickle

    frame = pd.DataFrame({"a": [1.0, 2.0], "y": [1.0, 2.0]})
    path = tmp_path / "custom.pkl"
    path.write_bytes(cloudpickle.dumps(Custom()))
    sqlite_registry.register_file(path, name="custom", train_data=frame, target="y", trust_pickle=True)
    assert sqlite_registry.get("custom:1").flavor == "pyfunc"
    with pytest.raises(SignatureError, match="not signed"):
        sqlite_registry.load("custom:1", trust_pickle=True)
    sqlite_registry.signatures.sign("custom:1", signing_key)
    assert sqlite_registry.load("custom:1", trust_pickle=True).predict(frame[["a"]]).values.tolist() == [
        1.0,
        2.0,
    ]


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path, sqlite_registry: Registry) -> None:
    for name in ("model.skops", "model.onnx", "model.ubj", "model.txt"):
        path = tmp_path / name
        path.write_bytes(b"this is not a model")
        with pytest.raises(FlavorError, match="is not a usable"):
            sqlite_registry.register_file(path, name="x")
    assert sqlite_registry.list_models() == []


class Custom:
    def predict(self, frame: pd.DataFrame) -> Any:
        return frame.iloc[:, 0].to_numpy()


def test_custom_code_needs_trust_and_a_trusted_signature_to_load(
    sqlite_registry: Registry, signing_key: SigningKey, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "y": [1.0, 2.0]})
    with pytest.raises(UntrustedArtifactError, match="trust_pickle=True"):
        sqlite_registry.register(Custom(), name="custom", train_data=frame, target="y")
    sqlite_registry.register(Custom(), name="custom", train_data=frame, target="y", trust_pickle=True)
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


def test_missing_framework_names_the_extra_to_install(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['xgboost'] = None\n"
        "from shipyard.flavors import flavor_named\n"
        "from shipyard.flavors.base import LoadOptions\n"
        "try:\n"
        "    flavor_named('xgboost').read_file(b'x', LoadOptions())\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "MissingDependencyError" in out
    assert "pip install 'shipyard[xgboost]'" in out
