from __future__ import annotations

from pathlib import Path

import pytest

from shipyard import ArtifactIntegrityError, StoreError
from shipyard.store.artifacts import ArtifactStore, digest_of


def test_blobs_are_stored_once_under_their_sha256(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    digest = store.put(b"model bytes")
    assert digest == digest_of(b"model bytes")
    assert store.put(b"model bytes") == digest
    assert store.get(digest) == b"model bytes"
    assert not list(tmp_path.rglob("*.part"))  # written beside the target, then renamed


def test_one_changed_byte_on_disk_is_refused_as_an_integrity_error(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    digest = store.put(b"model bytes")
    path = Path(store.path_of(digest))
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="modified on storage"):
        store.get(digest)


def test_any_fsspec_url_works(tmp_path: Path) -> None:
    store = ArtifactStore("memory://shipyard-test")
    digest = store.put(b"abc")
    assert store.exists(digest)
    store.delete(digest)
    assert not store.exists(digest)


def test_missing_blob_and_malformed_digest_get_clear_errors(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    with pytest.raises(StoreError, match="missing from the store"):
        store.get("0" * 64)
    with pytest.raises(StoreError, match="malformed"):
        store.get("../../etc/passwd")
