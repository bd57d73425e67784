"""The process-wide default registry behind `shipyard.register` and `shipyard.load`."""

from __future__ import annotations

from pathlib import Path

import pytest

import shipyard
from shipyard.registry import default


def test_register_and_load_use_the_default_registry(monkeypatch, tmp_path, cancer, cancer_model):
    from shipyard.registry import default

    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path))
    monkeypatch.delenv("SHIPYARD_DB_URL", raising=False)
    monkeypatch.delenv("SHIPYARD_STORE_URL", raising=False)
    default.reset()
    try:
        version = shipyard.register(
            cancer_model, name="cancer", train_data=cancer, target="label", alias="staging"
        )
        assert version.ref == shipyard.ModelRef("cancer", version=1)
        predictions = shipyard.load("cancer@staging").predict(cancer.drop(columns=["label"]))
        assert predictions.n_rows == len(cancer)
        assert (tmp_path / "shipyard.db").exists()
    finally:
        default.reset()


def test_the_default_registry_is_opened_once_and_again_after_a_reset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "first"))
    monkeypatch.delenv("SHIPYARD_DB_URL", raising=False)
    monkeypatch.delenv("SHIPYARD_STORE_URL", raising=False)
    default.reset()
    try:
        first = default.default_registry()
        assert default.default_registry() is first
        monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "second"))
        assert default.default_registry() is first  # the environment is read on first use only
        default.reset()
        second = default.default_registry()
        assert second is not first
        assert second.settings.home == tmp_path / "second"
    finally:
        default.reset()
