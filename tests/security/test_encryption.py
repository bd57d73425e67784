"""Encryption at rest on a real store: sealed artifacts and log segments, wrong keys, tampering, rotation."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shipyard import Batch, Registry, Settings
from shipyard.cli.app import main
from shipyard.errors import ArtifactIntegrityError, ConfigError, EncryptionError
from shipyard.monitoring.events import EventBatch, EventLog, read_events
from shipyard.security.audit import AuditLog
from shipyard.security.encryption import Envelope, MasterKey, new_master_key, rotate, seal_existing
from shipyard.store.artifacts import SEALED
from shipyard.store.metadata import utcnow

KEY, OTHER = new_master_key(), new_master_key()


@pytest.fixture
def sealed(tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any) -> tuple[Settings, Path]:
    """credit:1 registered with encryption at rest on; its artifact's path."""
    settings = replace(Settings.for_home(tmp_path / "home"), encryption_key=KEY)
    with Registry(settings, actor="t") as registry:
        version = registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
        path = Path(registry.artifacts.path_of(version.artifact_digest))
    return settings, path


def test_an_artifact_is_stored_sealed_and_loads_with_the_key(sealed: tuple[Settings, Path]) -> None:
    settings, path = sealed
    blob = path.read_bytes()
    assert blob.startswith(SEALED)
    assert b"PK\x03\x04" not in blob  # the skops zip is nowhere in clear
    assert path.with_name(path.name + ".key").is_file()
    with Registry(settings) as registry:
        assert registry.load("credit:1").version.version == 1


def test_without_the_key_or_with_another_one_the_error_says_which_key(sealed: tuple[Settings, Path]) -> None:
    settings, _ = sealed
    with (
        Registry(replace(settings, encryption_key=None)) as registry,
        pytest.raises(EncryptionError, match="encrypted at rest; set SHIPYARD_ENCRYPTION_KEY"),
    ):
        registry.load("credit:1")
    wrong = MasterKey.parse(OTHER, where="k").id
    with (
        Registry(replace(settings, encryption_key=OTHER)) as registry,
        pytest.raises(
            EncryptionError,
            match=f"encrypted under master key {MasterKey.parse(KEY, where='k').id}.*are {wrong}",
        ),
    ):
        registry.load("credit:1")
    with pytest.raises(ConfigError, match="not a key"):
        Registry(replace(settings, encryption_key="too-short"))


def test_changed_bytes_or_key_files_are_refused(sealed: tuple[Settings, Path]) -> None:
    settings, path = sealed
    blob = bytearray(path.read_bytes())
    blob[-20] ^= 0x01
    path.write_bytes(bytes(blob))
    with Registry(settings) as registry, pytest.raises(EncryptionError, match="bytes were changed"):
        registry.load("credit:1")
    path.with_name(path.name + ".key").unlink()
    with Registry(settings) as registry, pytest.raises(EncryptionError, match="key file .* is missing"):
        registry.load("credit:1")


def test_rotation_rewraps_the_data_keys_and_leaves_the_artifacts_untouched(
    sealed: tuple[Settings, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, path = sealed
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    sidecar = path.with_name(path.name + ".key").read_bytes()
    new_file = tmp_path / "new.key"
    monkeypatch.setenv("SHIPYARD_HOME", str(settings.home))
    monkeypatch.setenv("SHIPYARD_ENCRYPTION_KEY", KEY)
    with pytest.raises(SystemExit) as made:
        main(["encryption", "new-key", "--out", str(new_file)])
    assert made.value.code == 0 and oct(new_file.stat().st_mode)[-3:] == "600"
    with pytest.raises(SystemExit) as rotated:
        main(["encryption", "rotate", "--new-key-file", str(new_file)])
    assert rotated.value.code == 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # not rewritten
    assert path.with_name(path.name + ".key").read_bytes() != sidecar
    with Registry(replace(settings, encryption_key=new_file.read_text().strip())) as registry:
        assert registry.load("credit:1").version.version == 1
    with Registry(settings) as registry, pytest.raises(EncryptionError, match="encrypted under master key"):
        registry.load("credit:1")
    old, new = Envelope(MasterKey.parse(KEY, where="k")), MasterKey.from_file(new_file)
    assert rotate(settings.store_url, old, new) == (0, 1)  # a second run finds nothing to do


def test_during_a_rotation_the_previous_keys_open_what_either_key_sealed(
    sealed: tuple[Settings, Path], tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any
) -> None:
    settings, _ = sealed
    new_file = tmp_path / "next.key"
    new_file.write_text(OTHER)
    old_key, next_key = Envelope(MasterKey.parse(KEY, where="k")), MasterKey.parse(OTHER, where="k")
    # 1. every process learns the next key first (it opens, it does not seal) ...
    learning = replace(settings, encryption_previous_keys=(str(new_file),))
    with Registry(learning) as registry:
        assert registry.load("credit:1").version.version == 1
    # 2. ... so the rotation breaks no reader still on the old key
    assert rotate(settings.store_url, old_key, next_key)[0] == 1
    with Registry(learning) as registry:
        assert registry.load("credit:1").version.version == 1
        registry.register(credit_pipeline, name="straggler", train_data=credit, target="default")  # under KEY
    # 3. the switch: the new key seals, the old one still opens what stragglers wrote meanwhile
    switched = replace(settings, encryption_key=OTHER, encryption_previous_keys=(KEY,))
    with Registry(switched) as registry:
        assert registry.load("straggler:1").version.version == 1
    # 4. rotating again moves the stragglers over, and the old key can go
    assert rotate(settings.store_url, old_key, next_key)[0] == 1
    with Registry(replace(settings, encryption_key=OTHER)) as registry:
        assert registry.load("straggler:1").version.version == 1
        assert registry.load("credit:1").version.version == 1


def test_prediction_log_segments_are_sealed_and_read_back(
    sealed: tuple[Settings, Path], credit: pd.DataFrame
) -> None:
    settings, _ = sealed
    envelope = Envelope(MasterKey.parse(KEY, where="k"))
    with Registry(settings) as registry:
        loaded = registry.load("credit:1")
    rows = credit.drop(columns="default").head(5)
    batch = loaded.contract.validate(Batch.from_pandas(rows)).batch
    log = EventLog(settings.store_url, cipher=envelope)
    event = EventBatch(
        time=time.time(), model="credit", version=1, request_ids=["r1"], rows=[5], protocols=["rest"],
        latencies_ms=[3.0], statuses=["ok"], errors=[None], features=batch,
        predictions=loaded.predict_valid(batch),
    )  # fmt: skip
    log.append(event)
    [segment] = log.flush()
    assert Path(segment).read_bytes().startswith(SEALED)
    window = {"since": utcnow() - timedelta(hours=1), "until": utcnow() + timedelta(hours=1)}
    table = read_events(settings.store_url, "credit", cipher=envelope, **window)
    assert table.num_rows == 5
    with pytest.raises(EncryptionError, match="prediction log segment .* is encrypted"):
        read_events(settings.store_url, "credit", **window)


def test_objects_stored_before_encryption_are_sealed_in_place_and_still_load(
    tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = Settings.for_home(tmp_path / "home")
    with Registry(plain, actor="t") as registry:
        version = registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
        path = Path(registry.artifacts.path_of(version.artifact_digest))
        loaded = registry.load("credit:1")
    batch = loaded.contract.validate(Batch.from_pandas(credit.drop(columns="default").head(3))).batch
    log = EventLog(plain.store_url)
    log.append(
        EventBatch(
            time=time.time(), model="credit", version=1, request_ids=["r1"], rows=[3], protocols=["rest"],
            latencies_ms=[3.0], statuses=["ok"], errors=[None], features=batch,
            predictions=loaded.predict_valid(batch),
        )
    )  # fmt: skip
    [segment] = log.flush()
    assert not path.read_bytes().startswith(SEALED)
    monkeypatch.setenv("SHIPYARD_HOME", str(plain.home))
    with pytest.raises(SystemExit) as refused:  # no key: nothing to seal with
        main(["encryption", "seal"])
    assert refused.value.code != 0 and not path.read_bytes().startswith(SEALED)
    monkeypatch.setenv("SHIPYARD_ENCRYPTION_KEY", KEY)
    with pytest.raises(SystemExit) as done:
        main(["encryption", "seal"])
    assert done.value.code == 0
    assert path.read_bytes().startswith(SEALED) and Path(segment).read_bytes().startswith(SEALED)
    sealed = replace(plain, encryption_key=KEY)
    with Registry(sealed) as registry:
        assert registry.load("credit:1").version.version == 1
        assert AuditLog(registry).list(action="encryption-seal")
    window = {"since": utcnow() - timedelta(hours=1), "until": utcnow() + timedelta(hours=1)}
    envelope = Envelope(MasterKey.parse(KEY, where="k"))
    assert read_events(sealed.store_url, "credit", cipher=envelope, **window).num_rows == 3
    assert seal_existing(sealed.store_url, envelope.master) == (0, 2)  # a second run finds nothing


def test_a_damaged_plain_artifact_is_not_sealed(
    tmp_path: Path, credit: pd.DataFrame, credit_pipeline: Any
) -> None:
    plain = Settings.for_home(tmp_path / "home")
    with Registry(plain, actor="t") as registry:
        version = registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
        path = Path(registry.artifacts.path_of(version.artifact_digest))
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ArtifactIntegrityError, match="no longer matches its digest; it was not sealed"):
        seal_existing(plain.store_url, MasterKey.parse(KEY, where="k"))
    assert not path.read_bytes().startswith(SEALED)
