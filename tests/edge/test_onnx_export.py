"""`to_onnx`: named, typed inputs, a front that casts them, and refusals that name the step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from homes import copy_home
from shipyard import Registry, Settings
from shipyard.edge.export import onnx_scorer
from shipyard.edge.onnx_export import to_onnx
from shipyard.errors import ExportError, UnsupportedExportError


@pytest.fixture(scope="module")
def registry(edge_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    home = copy_home(edge_home, tmp_path_factory.mktemp("onnx-export") / "home")
    return Registry(Settings.for_home(home), actor="tester")


def _inputs(graph: onnx.ModelProto) -> dict[str, str]:
    names = {v: k for k, v in onnx.TensorProto.DataType.items()}
    return {i.name: names[i.type.tensor_type.elem_type] for i in graph.graph.input}


def test_a_pipeline_takes_the_contract_features_by_name_with_their_dtypes(registry: Registry) -> None:
    graph = to_onnx(registry.load("credit:1"))
    assert _inputs(graph) == {
        "age": "INT64",
        "income": "DOUBLE",
        "debt_ratio": "DOUBLE",
        "months_employed": "INT64",
        "country": "STRING",
        "employment": "STRING",
        "vip": "BOOL",
    }
    assert [o.name for o in graph.graph.output] == ["label", "probabilities"]
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["shipyard.source"] == "credit:1"
    assert json.loads(meta["shipyard.classes"]) == [0, 1]
    assert [f["name"] for f in json.loads(meta["shipyard.features"])][:2] == ["age", "income"]


def test_float32_keeps_integers_and_makes_numbers_float(registry: Registry) -> None:
    inputs = _inputs(to_onnx(registry.load("credit:1"), dtype="float32"))
    assert (inputs["age"], inputs["income"], inputs["country"]) == ("INT64", "FLOAT", "STRING")


@pytest.mark.parametrize("ref", ["credit:1", "mlp:1", "plain:1", "debt:1"])
def test_the_export_answers_as_the_version_on_its_training_rows(
    registry: Registry, applications: pd.DataFrame, ref: str
) -> None:
    loaded = registry.load(ref)
    rows = applications.fillna({"income": 0.0}) if ref == "plain:1" else applications  # no imputer
    batch = loaded.validate(rows).batch
    ours = loaded.predict_valid(batch)
    theirs = onnx_scorer(to_onnx(loaded), loaded.contract)(batch)
    if ours.probabilities is None:
        np.testing.assert_allclose(theirs.values, ours.values, rtol=0, atol=1e-9)
    else:
        assert theirs.values.tolist() == ours.values.tolist()
        np.testing.assert_allclose(theirs.probabilities, ours.probabilities, rtol=0, atol=1e-9)


def test_a_numpy_fitted_model_reads_the_features_in_contract_order(registry: Registry) -> None:
    graph = to_onnx(registry.load("plain:1"))
    assert list(_inputs(graph)) == ["age", "income", "debt_ratio", "months_employed"]
    concat = [n for n in graph.graph.node if n.name == "front_concat"]
    assert [i.removesuffix("__column") for i in concat[0].input] == list(_inputs(graph))


def test_an_unsupported_step_is_refused_by_name_and_class(registry: Registry) -> None:
    with pytest.raises(UnsupportedExportError, match=r"step 'spline' \(SplineTransformer\)") as caught:
        to_onnx(registry.load("spline:1"))
    assert "supported steps: ColumnTransformer" in str(caught.value)


def test_custom_python_and_onnx_versions_are_refused_with_what_would_work(registry: Registry) -> None:
    from shipyard.edge.onnx_export import refuse_flavor

    with pytest.raises(
        UnsupportedExportError, match="custom Python model .pyfunc flavor.*Register the scikit"
    ):
        refuse_flavor("pyfunc", "custom:1")
    with pytest.raises(UnsupportedExportError, match="already an ONNX model.*models download"):
        refuse_flavor("onnx", "credit:2")


def test_an_unknown_precision_is_refused(registry: Registry) -> None:
    with pytest.raises(ExportError, match="expected one of .'float64', 'float32'."):
        to_onnx(registry.load("credit:1"), dtype="float16")


def test_an_encoder_first_and_a_passthrough_remainder_still_compute_in_double(
    registry: Registry, applications: pd.DataFrame
) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from shipyard.edge.parity import check_parity

    front = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), ["country", "employment"]),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), ["income", "debt_ratio"]),
        ],
        remainder="passthrough",
    )
    model = Pipeline([("front", front), ("clf", LogisticRegression(max_iter=5000))])
    model.fit(applications.drop(columns=["default"]), applications["default"])
    version = registry.register(model, name="encoded-first", train_data=applications, target="default")
    loaded = registry.load(version.ref)
    graph = to_onnx(loaded)
    assert graph.graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    report = check_parity(loaded, onnx_scorer(graph, loaded.contract))
    assert report.passed, report.summary()


def test_an_integer_that_may_be_missing_arrives_as_a_number_with_nan(registry: Registry) -> None:
    from shipyard.edge.parity import check_parity

    contract = registry.get("credit:1").contract.replace_feature("age", nullable=True, on_missing="pass")
    loaded = registry.load(registry.edit_contract("credit:1", contract).ref)
    graph = to_onnx(loaded)
    assert _inputs(graph)["age"] == "DOUBLE"
    report = check_parity(loaded, onnx_scorer(graph, loaded.contract))
    assert report.passed, report.summary()
    assert report.rows_from["edge rows"] == 23  # one more than credit:1: age missing
