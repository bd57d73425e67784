"""Signed versions: Ed25519 signatures over a manifest, accepted only from trusted keys."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shipyard.errors import ConfigError, SignatureError
from shipyard.security.signing import SigningKey, TrustedKeys, manifest, new_signing_key

MANIFEST = manifest(
    name="credit", version=1, flavor="sklearn", artifact_digest="ab" * 32, artifact_size=10, contract={}
)


def _key(folder: Path, name: str) -> tuple[SigningKey, Path]:
    kid, public = new_signing_key(folder / f"{name}.pem")
    key = SigningKey.from_file(folder / f"{name}.pem")
    assert key.id == kid
    return key, public


def test_a_new_key_is_private_to_its_owner_and_never_overwritten(tmp_path: Path) -> None:
    kid, public = new_signing_key(tmp_path / "release.pem")
    assert len(kid) == 16 and public == tmp_path / "release.pub"
    assert stat.S_IMODE((tmp_path / "release.pem").stat().st_mode) == 0o600
    with pytest.raises(ConfigError, match="exists; a key file is never overwritten"):
        new_signing_key(tmp_path / "release.pem")


def test_the_manifest_is_canonical_whatever_order_the_contract_comes_in() -> None:
    first = manifest(
        name="m", version=2, flavor="f", artifact_digest="d", artifact_size=1, contract={"a": 1, "b": 2}
    )
    second = manifest(
        name="m", version=2, flavor="f", artifact_digest="d", artifact_size=1, contract={"b": 2, "a": 1}
    )
    assert first == second
    assert first != manifest(
        name="m", version=3, flavor="f", artifact_digest="d", artifact_size=1, contract={}
    )


def test_a_trusted_signature_names_its_key_and_a_changed_manifest_does_not_verify(tmp_path: Path) -> None:
    key, public = _key(tmp_path, "release")
    trusted = TrustedKeys.from_paths([public])
    assert trusted.check(MANIFEST, [(key.id, key.sign(MANIFEST))], what="credit:1") == key.id
    changed = manifest(
        name="credit", version=1, flavor="sklearn", artifact_digest="cd" * 32, artifact_size=10, contract={}
    )
    with pytest.raises(SignatureError, match=f"by key {key.id} does not verify"):
        trusted.check(changed, [(key.id, key.sign(MANIFEST))], what="credit:1")


def test_unsigned_untrusted_or_trustless_versions_are_refused_saying_why(tmp_path: Path) -> None:
    key, public = _key(tmp_path, "release")
    stranger, _ = _key(tmp_path, "stranger")
    trusted = TrustedKeys.from_paths([public])
    with pytest.raises(SignatureError, match="credit:1 is not signed"):
        trusted.check(MANIFEST, [], what="credit:1")
    with pytest.raises(
        SignatureError, match=f"only by untrusted key\\(s\\) {stranger.id}; trusted are {key.id}"
    ):
        trusted.check(MANIFEST, [(stranger.id, stranger.sign(MANIFEST))], what="credit:1")
    with pytest.raises(SignatureError, match="no key is trusted"):
        TrustedKeys([]).check(MANIFEST, [(key.id, key.sign(MANIFEST))], what="credit:1")


def test_trusted_keys_come_from_files_and_folders_and_bad_ones_are_refused(tmp_path: Path) -> None:
    (tmp_path / "private").mkdir()
    (tmp_path / "trusted").mkdir()
    first, first_public = _key(tmp_path / "private", "first")
    second, second_public = _key(tmp_path / "private", "second")
    for public in (first_public, second_public):
        (tmp_path / "trusted" / public.name).write_bytes(public.read_bytes())
    (tmp_path / "trusted" / "notes.txt").write_text("not a key, not read")
    assert set(TrustedKeys.from_paths([tmp_path / "trusted"]).keys) == {first.id, second.id}
    with pytest.raises(ConfigError, match="does not exist"):
        TrustedKeys.from_paths([tmp_path / "missing.pub"])
    with pytest.raises(ConfigError, match="first.pem is not a PEM public key"):
        TrustedKeys.from_paths([tmp_path / "private"])  # the private halves are there too
    with pytest.raises(ConfigError, match="is not an unencrypted PEM private key"):
        SigningKey.from_file(first_public)
