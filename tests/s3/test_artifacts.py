"""The artifact store on S3 (moto and SeaweedFS): whole objects, digests, multipart, encryption, crashes."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from tests.s3.s3servers import BUCKET, S3Server, keys, use

from shipyard import Settings
from shipyard.errors import ArtifactIntegrityError, EncryptionError, StoreError
from shipyard.security.encryption import envelope_for, new_master_key
from shipyard.store.artifacts import SEALED, ArtifactStore, digest_of
from shipyard.store.objects import PART_BYTES


def key_of(store: ArtifactStore, digest: str) -> str:
    return store.path_of(digest).removeprefix(f"{BUCKET}/")


def test_put_get_and_exists_check_the_digest(s3: S3Server, store_url: str) -> None:
    store = ArtifactStore(store_url)
    digest = store.put(b"a model")
    assert digest == digest_of(b"a model") and store.exists(digest)
    assert store.put(b"a model") == digest  # the same bytes are stored once
    assert store.get(digest) == b"a model"
    assert keys(s3, store_url) == [key_of(store, digest)]  # no temporary object left behind
    s3.client().put_object(Bucket=BUCKET, Key=key_of(store, digest), Body=b"another model")
    with pytest.raises(ArtifactIntegrityError, match=f"artifact {digest[:12]} .* was modified on storage"):
        store.get(digest)
    missing = digest_of(b"never stored")
    assert not store.exists(missing)
    with pytest.raises(StoreError, match=f"artifact {missing[:12]} is missing from the store at {store_url}"):
        store.get(missing)
    store.delete(digest)
    assert not store.exists(digest) and keys(s3, store_url) == []


def test_a_missing_bucket_is_told_and_not_created(s3: S3Server, store_url: str) -> None:
    missing = "s3://no-such-bucket/models"
    with pytest.raises(StoreError, match=f"in the store at {missing}: .*expected an existing bucket"):
        ArtifactStore(missing).put(b"a model")
    assert "no-such-bucket" not in {b["Name"] for b in s3.client().list_buckets()["Buckets"]}


def test_an_object_over_one_part_goes_up_as_a_multipart_upload(s3: S3Server, store_url: str) -> None:
    store = ArtifactStore(store_url)
    data = os.urandom(2 * PART_BYTES + 12345)  # 10 MiB and a bit: three parts
    digest = store.put(data)
    head = s3.client().head_object(Bucket=BUCKET, Key=key_of(store, digest))
    assert head["ContentLength"] == len(data)
    assert "-" in head["ETag"]  # a completed multipart upload's ETag: "<md5 of the part md5s>-<parts>"
    assert store.get(digest) == data
    assert s3.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_artifacts_are_sealed_at_rest_on_s3(s3: S3Server, store_url: str, tmp_path: Path) -> None:
    settings = replace(Settings.for_home(tmp_path), store_url=store_url, encryption_key=new_master_key())
    store = ArtifactStore(store_url, cipher=envelope_for(settings))
    model = b"the plain bytes of a model " * 1000
    digest = store.put(model)
    stored = s3.client().get_object(Bucket=BUCKET, Key=key_of(store, digest))["Body"].read()
    assert stored.startswith(SEALED) and model[:100] not in stored  # not the plain artifact
    assert sorted(keys(s3, store_url)) == [key_of(store, digest), f"{key_of(store, digest)}.key"]
    assert store.get(digest) == model
    with pytest.raises(EncryptionError, match="encrypted at rest; set SHIPYARD_ENCRYPTION_KEY"):
        ArtifactStore(store_url).get(digest)


def test_a_server_killed_mid_upload_leaves_no_partial_object(
    seaweedfs: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SeaweedFS keeps its objects on disk, so it can be killed and started again on the same
    data; moto's objects live in this process's memory, and a crash would take them with it."""
    use(seaweedfs, monkeypatch)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # fail fast once the server is gone
    store = ArtifactStore(f"s3://{BUCKET}/crash-{os.getpid()}")
    data = os.urandom(8 * PART_BYTES)  # 40 MiB: an upload long enough to be caught in flight
    client = seaweedfs.client()
    failed: list[BaseException] = []

    def upload() -> None:
        try:
            store.put(data)
        except BaseException as exc:
            failed.append(exc)

    uploading = threading.Thread(target=upload)
    uploading.start()
    deadline = time.monotonic() + 20
    while not client.list_multipart_uploads(Bucket=BUCKET).get("Uploads"):
        assert uploading.is_alive() and time.monotonic() < deadline, "the upload was never seen in flight"
        time.sleep(0.005)
    seaweedfs.kill()
    uploading.join(timeout=60)
    assert failed, "the upload claimed success although its server was killed"
    seaweedfs.start()
    digest = digest_of(data)
    assert not store.exists(digest)
    assert keys(seaweedfs, store.url) == []  # nothing under the prefix: no partial object
    assert store.put(data) == digest and store.get(digest) == data  # the store works on
