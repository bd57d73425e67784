"""`shipyard.export`: written or registered only when the gate passes; an export is a version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from homes import copy_home
from shipyard import Registry, Settings, export
from shipyard.edge.parity import Holdout
from shipyard.errors import ExportError, ParityError, UnsupportedExportError


@pytest.fixture
def registry(edge_home: Path, tmp_path: Path) -> Registry:
    return Registry(Settings.for_home(copy_home(edge_home, tmp_path / "home")), actor="tester")


def test_an_export_writes_the_graph_and_its_parity_report(registry: Registry, tmp_path: Path) -> None:
    result = export("credit:1", out=tmp_path / "edge", registry=registry)
    assert sorted(p.name for p in (tmp_path / "edge").iterdir()) == ["model.onnx", "parity.json"]
    assert result.files == (tmp_path / "edge" / "model.onnx", tmp_path / "edge" / "parity.json")
    stored = json.loads((tmp_path / "edge" / "parity.json").read_text())
    assert stored["passed"] is True and stored["rows"] == result.report.rows
    assert result.registered is None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_a_folder_with_files_is_refused_before_converting(registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "edge").mkdir()
    (tmp_path / "edge" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an empty folder"):
        export("credit:1", out=tmp_path / "edge", registry=registry)
    assert [p.name for p in (tmp_path / "edge").iterdir()] == ["keep.txt"]


def test_a_registered_export_is_a_version_that_answers_as_its_source(
    registry: Registry, applications: pd.DataFrame
) -> None:
    result = export("credit:1", register=True, registry=registry)
    assert result.registered == "credit:2"
    version = registry.get("credit:2")
    assert version.flavor == "onnx" and version.contract == registry.get("credit:1").contract
    assert version.lineage["exported_from"] == "credit:1"
    assert version.lineage["parity"]["passed"] is True
    assert version.lineage["training_data"] == registry.get("credit:1").lineage["training_data"]
    assert version.profile is not None and version.explanation is not None  # the source's reference
    ours, theirs = (
        registry.load("credit:1").predict(applications),
        registry.load("credit:2").predict(applications),
    )
    assert theirs.values.tolist() == ours.values.tolist()
    np.testing.assert_allclose(theirs.probabilities, ours.probabilities, rtol=0, atol=1e-9)


def test_missing_text_and_numbers_reach_the_export_as_they_reach_the_version(
    registry: Registry, applications: pd.DataFrame
) -> None:
    contract = registry.get("credit:1").contract.replace_feature("country", nullable=True, on_missing="pass")
    registry.edit_contract("credit:1", contract)
    assert export("credit:2", register=True, registry=registry).registered == "credit:3"
    rows = applications.head(4).astype({"country": object, "income": object})
    rows.loc[[0, 1], "country"] = None
    rows.loc[[1, 2], "income"] = None
    ours, theirs = registry.load("credit:2").predict(rows), registry.load("credit:3").predict(rows)
    np.testing.assert_allclose(theirs.probabilities, ours.probabilities, rtol=0, atol=1e-9)


def test_a_registered_export_can_be_exported_again_only_as_a_download(registry: Registry) -> None:
    export("mlp:1", register=True, registry=registry)
    with pytest.raises(UnsupportedExportError, match="mlp:2 is already an ONNX model"):
        export("mlp:2", registry=registry)


@pytest.mark.filterwarnings("ignore:.*probability.*:FutureWarning")  # skl2onnx reads SVC.probA_
def test_an_export_that_misses_parity_is_refused_and_writes_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    with pytest.raises(
        ParityError, match=r"(?s)rbf:1 is refused; nothing was written.\n.*100 rows differ"
    ) as caught:
        export("rbf:1", out=tmp_path / "edge", register=True, registry=registry)
    assert "row 1: version" in str(caught.value)
    assert caught.value.report["differing_count"] == 100 and caught.value.report["passed"] is False
    assert not (tmp_path / "edge").exists()
    assert [v.version for v in registry.versions("rbf")] == [1]


def test_custom_python_and_unsupported_steps_are_refused_by_name(registry: Registry) -> None:
    with pytest.raises(UnsupportedExportError, match="custom:1 is a custom Python model"):
        export("custom:1", registry=registry)
    with pytest.raises(UnsupportedExportError, match=r"step 'spline' \(SplineTransformer\)"):
        export("spline:1", registry=registry)
    with pytest.raises(ExportError, match="--to c writes a header and a source"):
        export("credit:1", to="c", registry=registry)
    with pytest.raises(ExportError, match="cannot export to 'coreml'"):
        export("credit:1", to="coreml", registry=registry)


def test_a_holdout_measures_the_metric_against_true_labels(
    registry: Registry, applications: pd.DataFrame
) -> None:
    holdout = Holdout(applications.drop(columns=["default"]), applications["default"].to_numpy())
    result = export("plain:1", registry=registry, holdout=holdout)
    accepted = int(applications["income"].notna().sum())  # plain:1 was fitted without missing incomes
    assert result.report.metric_data == f"the holdout ({accepted} rows the contract accepts)"
    assert 0.5 < result.report.metric_source < 1.0
