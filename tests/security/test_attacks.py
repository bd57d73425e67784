"""What attackers try on the files and names Shipyard reads: each is refused and nothing changes.

(Attacks on a running server, keys, tokens, roles, floods and bodies, are in test_server_access.py
and test_server_identity.py.)
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from shipyard import Deployments, Registry
from shipyard.errors import (
    ArtifactIntegrityError,
    ConfigError,
    FlavorError,
    RefError,
    SignatureError,
)
from shipyard.security.keys import Keys
from shipyard.security.signing import SigningKey


class _Payload:
    """Unpickling this writes a marker file: what a malicious 'model' would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "pwned"))


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "..", "x\x00y", "/abs", "C:\\\\x", ""])
def test_path_traversal_in_names_is_refused_everywhere(
    sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any, name: str
) -> None:
    with pytest.raises(RefError, match="not allowed"):
        sqlite_registry.register(credit_pipeline, name=name, train_data=credit, target="default")
    with pytest.raises((RefError, ConfigError)):
        Keys(sqlite_registry).create(name, role="reader")
    with pytest.raises(RefError):
        sqlite_registry.get(f"{name}:1")
    sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    with pytest.raises(RefError):
        Deployments(sqlite_registry).create(name, "credit:1")
    assert [m.name for m in sqlite_registry.list_models()] == ["credit"]
    assert not list(Path(sqlite_registry.settings.home).rglob("passwd"))


def test_a_pickle_disguised_as_a_skops_file_is_never_unpickled(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned.txt"
    disguised = tmp_path / "model.skops"
    disguised.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(FlavorError):
        sqlite_registry.register_file(disguised, name="evil")
    for suffix in (".pkl", ".joblib", ".pickle"):
        named = tmp_path / f"model{suffix}"
        named.write_bytes(disguised.read_bytes())
        with pytest.raises(FlavorError, match="pickle"):
            sqlite_registry.register_file(named, name="evil")
    assert not marker.exists()
    assert sqlite_registry.list_models() == []


def test_a_tampered_artifact_is_refused_on_load(
    sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any
) -> None:
    version = sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    path = Path(sqlite_registry.artifacts.path_of(version.artifact_digest))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="modified on storage"):
        sqlite_registry.load("credit:1")


def test_a_version_changed_after_it_was_signed_fails_its_signature(
    sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any, signing_key: SigningKey
) -> None:
    sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    sqlite_registry.signatures.sign("credit:1", signing_key)
    assert sqlite_registry.load("credit:1", require_signature=True).version.version == 1
    with sqlite_registry.meta.engine.begin() as conn:  # someone with database access widens a range
        contract = conn.execute(text("SELECT contract FROM model_versions")).scalar_one()
        widened = str(contract).replace('"on_out_of_range": "allow"', '"on_out_of_range": "clip"', 1)
        conn.execute(text("UPDATE model_versions SET contract = :c"), {"c": widened})
    with pytest.raises(SignatureError, match="does not verify"):
        sqlite_registry.load("credit:1", require_signature=True)
    sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    with pytest.raises(SignatureError, match="credit:2 is not signed"):
        sqlite_registry.load("credit:2", require_signature=True)
