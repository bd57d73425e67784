"""Picking a flavor: by name, for a model object, for a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard import FlavorError, Registry


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path, sqlite_registry: Registry) -> None:
    for name in ("model.skops", "model.onnx", "model.ubj", "model.txt"):
        path = tmp_path / name
        path.write_bytes(b"this is not a model")
        with pytest.raises(FlavorError, match="is not a usable"):
            sqlite_registry.register_file(path, name="x")
    assert sqlite_registry.list_models() == []
