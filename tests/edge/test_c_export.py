"""`export_c`: a registered version written as C once the compiled C passes the parity gate.

These run the whole path (`edge/trees.py`, `edge/parity.py`, the registry), so they need the
trees and parity modules merged beside the C export.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.neural_network import MLPClassifier

from shipyard import Registry
from shipyard.edge.c_export import export_c
from shipyard.edge.c_harness import CFLAGS
from shipyard.errors import ExportError, UnsupportedExportError
from shipyard.security.signing import SigningKey


class HalfModel:
    """A custom pyfunc model: half of column a."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return frame["a"].to_numpy() / 2


def frame(seed: int = 0, rows: int = 300) -> pd.DataFrame:
    x, y = make_classification(rows, 5, n_informative=3, random_state=seed)
    data = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    data.loc[::9, "f1"] = np.nan
    return data.assign(y=y)


def test_a_forest_is_written_as_c_with_its_parity_report(sqlite_registry: Registry, tmp_path: Path) -> None:
    data = frame()
    model = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0).fit(
        data.drop(columns="y"), data.y
    )
    sqlite_registry.register(model, name="forest", train_data=data, target="y")
    written = export_c(sqlite_registry.load("forest:1"), tmp_path / "c")
    assert sorted(p.name for p in written.out.iterdir()) == [
        "USAGE.txt",
        "forest.c",
        "forest.h",
        "parity.json",
    ]
    assert written.parity.passed and json.loads((written.out / "parity.json").read_text())
    assert "#define FOREST_N_FEATURES 5" in written.header.read_text()
    assert "forest_predict_label" in written.usage.read_text()
    gcc = shutil.which("gcc")
    assert gcc is not None
    subprocess.run(
        [gcc, *CFLAGS, "-c", "forest.c", "-o", str(tmp_path / "forest.o")], cwd=written.out, check=True
    )


def test_a_categorical_gradient_boosting_model_maps_category_texts_in_c(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    data = frame(1)
    data["colour"] = pd.Categorical(np.random.default_rng(0).choice(["red", "green", "blue"], len(data)))
    data.loc[data.colour == "red", "y"] = 1
    model = HistGradientBoostingClassifier(max_iter=20, categorical_features="from_dtype", random_state=0)
    model.fit(data.drop(columns="y"), data.y)
    sqlite_registry.register(model, name="hgb", train_data=data, target="y")
    written = export_c(sqlite_registry.load("hgb:1"), tmp_path / "c", name="colours")
    assert written.parity.passed
    assert "colours_category_code" in written.header.read_text()


def test_a_forest_in_float32_passes_the_gate(sqlite_registry: Registry, tmp_path: Path) -> None:
    data = frame(2)
    model = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0).fit(
        data.drop(columns="y"), data.y
    )
    sqlite_registry.register(model, name="forest", train_data=data, target="y")
    written = export_c(sqlite_registry.load("forest:1"), tmp_path / "c", dtype="float32")
    assert written.parity.passed
    assert "void forest_predict(const float *features, float *out);" in written.header.read_text()


def test_a_scaled_logistic_regression_pipeline_is_written_as_c(
    sqlite_registry: Registry, cancer: pd.DataFrame, cancer_model: Any, tmp_path: Path
) -> None:
    sqlite_registry.register(cancer_model, name="cancer", train_data=cancer, target="label")
    written = export_c(sqlite_registry.load("cancer:1"), tmp_path / "c")
    assert written.parity.passed
    assert "cancer_mean0" in written.source.read_text()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_an_mlp_is_refused_and_nothing_is_written(sqlite_registry: Registry, tmp_path: Path) -> None:
    data = frame()
    mlp = MLPClassifier(hidden_layer_sizes=(4,), max_iter=50, random_state=0)
    mlp.fit(data.drop(columns="y").fillna(0), data.y)
    sqlite_registry.register(mlp, name="mlp", train_data=data.fillna(0), target="y")
    with pytest.raises(UnsupportedExportError, match=r"MLPClassifier: .*--to onnx"):
        export_c(sqlite_registry.load("mlp:1"), tmp_path / "exports" / "c")
    assert not (tmp_path / "exports").exists()


def test_a_pyfunc_version_is_refused(
    sqlite_registry: Registry, signing_key: SigningKey, tmp_path: Path
) -> None:
    data = pd.DataFrame({"a": np.arange(20.0), "y": np.arange(20.0) / 2})
    sqlite_registry.register(HalfModel(), name="custom", train_data=data, target="y", trust_pickle=True)
    sqlite_registry.signatures.sign("custom:1", signing_key)
    with pytest.raises(UnsupportedExportError, match="pyfunc"):
        export_c(sqlite_registry.load("custom:1", trust_pickle=True), tmp_path / "c")


def test_a_folder_that_is_not_empty_is_refused(sqlite_registry: Registry, tmp_path: Path) -> None:
    data = frame()
    model = RandomForestClassifier(n_estimators=2, max_depth=2, random_state=0).fit(
        data.drop(columns="y"), data.y
    )
    sqlite_registry.register(model, name="forest", train_data=data, target="y")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an empty folder"):
        export_c(sqlite_registry.load("forest:1"), tmp_path / "c")
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["keep.txt"]
