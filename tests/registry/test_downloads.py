"""`download`: a version's artifact in its framework's own format, and its contract."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from shipyard import Registry
from shipyard.errors import RegistryError
from shipyard.registry.downloads import download


def test_a_scikit_learn_version_comes_back_as_skops_with_its_contract(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0], "y": [0, 0, 1, 1]})
    model = LogisticRegression().fit(frame[["a", "b"]], frame["y"])
    sqlite_registry.register(model, name="tiny", train_data=frame, target="y")
    files = download(sqlite_registry, "tiny:1", out=tmp_path / "tiny")
    assert [f.name for f in files] == ["model.skops", "contract.json"]
    loaded = sio.load(files[0], trusted=sio.get_untrusted_types(file=files[0]))
    assert loaded.predict(frame[["a", "b"]]).tolist() == model.predict(frame[["a", "b"]]).tolist()
    assert json.loads(files[1].read_text())["classes"] == [0, 1]
    with pytest.raises(RegistryError, match="not an empty folder"):
        download(sqlite_registry, "tiny:1", out=tmp_path / "tiny")
