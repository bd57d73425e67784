"""Signing versions and checking their signatures against the trusted keys."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shipyard import Registry
from shipyard.errors import SignatureError
from shipyard.registry.signatures import version_manifest
from shipyard.security.signing import SigningKey, TrustedKeys, new_signing_key


@pytest.fixture
def version(sqlite_registry: Registry, cancer_model: Any, cancer: pd.DataFrame) -> Any:
    return sqlite_registry.register(cancer_model, name="cancer", train_data=cancer, target="label")


def test_an_unsigned_version_does_not_verify(sqlite_registry: Registry, version: Any) -> None:
    assert sqlite_registry.signatures.list(version) == []
    assert not sqlite_registry.signatures.verifies(version)
    with pytest.raises(SignatureError, match="cancer:1 is not signed"):
        sqlite_registry.signatures.verify(version)


def test_a_trusted_key_s_signature_verifies_and_signing_again_replaces_it(
    sqlite_registry: Registry, version: Any, signing_key: SigningKey
) -> None:
    first = sqlite_registry.signatures.sign("cancer:1", signing_key)
    again = sqlite_registry.signatures.sign("cancer:1", signing_key)
    records = sqlite_registry.signatures.list(version)
    assert [r.to_dict() for r in records] == [again.to_dict()]
    assert (again.key_id, again.actor) == (signing_key.id, "tester") and again.signed_at >= first.signed_at
    assert sqlite_registry.signatures.verify(version) == signing_key.id
    assert sqlite_registry.signatures.verifies(version)


def test_another_key_s_signature_is_kept_beside_and_counts_only_when_trusted(
    sqlite_registry: Registry, version: Any, signing_key: SigningKey, tmp_path: Path
) -> None:
    new_signing_key(tmp_path / "other.pem")
    other = SigningKey.from_file(tmp_path / "other.pem")
    sqlite_registry.signatures.sign("cancer:1", other)
    with pytest.raises(SignatureError, match=f"signed only by untrusted key\\(s\\) {other.id}"):
        sqlite_registry.signatures.verify(version)
    assert (
        sqlite_registry.signatures.verify(version, TrustedKeys.from_paths([tmp_path / "other.pub"]))
        == other.id
    )
    sqlite_registry.signatures.sign("cancer:1", signing_key)
    assert [r.key_id for r in sqlite_registry.signatures.list(version)] == [other.id, signing_key.id]
    assert sqlite_registry.signatures.verify(version) == signing_key.id


def test_a_signature_covers_the_artifact_flavor_and_contract(
    sqlite_registry: Registry, version: Any, signing_key: SigningKey
) -> None:
    sqlite_registry.signatures.sign("cancer:1", signing_key)
    changes = [
        {"artifact_digest": "0" * 64},
        {"flavor": "pyfunc"},
        {"contract": replace(version.contract, target="other")},
    ]
    for change in changes:
        changed = replace(version, **change)
        assert version_manifest(changed) != version_manifest(version)
        with pytest.raises(SignatureError, match="does not verify"):
            sqlite_registry.signatures.verify(changed)
        assert not sqlite_registry.signatures.verifies(changed)
