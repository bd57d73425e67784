"""int8 quantization: what it changes on an MLP, how it calibrates, and where it refuses."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import onnx
import pytest
from skl2onnx import to_onnx
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from shipyard.core.batch import Batch, Predictions
from shipyard.core.contract import Contract, Feature
from shipyard.core.dtypes import DType
from shipyard.core.profile import Profile
from shipyard.edge.calibration import feeds_of, rows_from_profile
from shipyard.edge.headline import drop_of
from shipyard.edge.linear_onnx import register_converters
from shipyard.edge.onnx_export import onnx_scorer as onnx_predictor
from shipyard.edge.quantize import TREES_NOT_APPLICABLE, quantize
from shipyard.errors import InputError, UnsupportedExportError

NAMES = [f"f{i}" for i in range(20)]


@pytest.fixture(scope="module")
def mlp() -> tuple[Any, onnx.ModelProto, np.ndarray, np.ndarray]:
    """A 20-feature MLP of two hidden layers (256, 128), its float32 graph, and its data."""
    x, y = make_classification(600, 20, n_informative=10, n_classes=3, random_state=0)
    x = x.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier((256, 128), max_iter=15, random_state=0).fit(x[:400], y[:400])
    return model, to_onnx(model, x[:1], options={"zipmap": False}), x, y


def _contract() -> Contract:
    return Contract(
        features=tuple(Feature(name=n, dtype=DType.FLOAT) for n in NAMES),
        task="classification",
        classes=(0, 1, 2),
    )


def _batch(x: np.ndarray) -> Batch:
    return Batch.from_columns(dict(zip(NAMES, x.astype(np.float64).T, strict=True)))


def _answers(model: onnx.ModelProto, x: np.ndarray) -> Predictions:
    return onnx_predictor(model, _contract())(_batch(x))


def test_dynamic_int8_makes_the_mlp_three_times_smaller_and_keeps_its_accuracy(mlp: Any) -> None:
    _, graph, x, y = mlp
    quantized = quantize(graph, mode="dynamic", calibration=x[:64], repeats=2, batch_rows=64)
    assert {n.became for n in quantized.nodes} == {"MatMulInteger"}
    report = quantized.to_dict()
    assert report["operators"]["MatMul"] == {"before": 3, "after": 0}
    assert report["operators"]["DynamicQuantizeLinear"]["after"] == 3
    assert quantized.size_ratio >= 3.0  # a size fact; speed is the benchmark's to say
    assert report["latency"]["before"]["batch_rows"] == 64
    drop = drop_of("classification", y[400:], _answers(graph, x[400:]), _answers(quantized.model, x[400:]))
    assert set(drop.before) == {"accuracy", "f1_macro", "roc_auc", "brier"}
    assert drop.within(0.02)


def test_static_int8_calibrates_on_rows_drawn_from_the_reference_profile(mlp: Any) -> None:
    _, graph, x, y = mlp
    profile = Profile.build(_batch(x[:400]))
    rows = rows_from_profile(profile, _contract(), 256, seed=1)
    quantized = quantize(graph, mode="static", calibration=rows, repeats=2, batch_rows=64)
    assert {n.became for n in quantized.nodes} == {"MatMul on int8 QDQ inputs"}
    assert quantized.to_dict()["format"] == "QDQ (U8S8)"
    assert quantized.size_ratio >= 3.0
    drop = drop_of("classification", y[400:], _answers(graph, x[400:]), _answers(quantized.model, x[400:]))
    assert drop.within(0.02)


def test_static_without_calibration_rows_is_refused(mlp: Any) -> None:
    with pytest.raises(InputError, match="calibration rows"):
        quantize(mlp[1], mode="static")


def test_a_tree_ensemble_is_not_applicable_rather_than_copied() -> None:
    x, y = make_classification(200, 5, random_state=0)
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x, y)
    graph = to_onnx(forest, x[:1].astype(np.float32), options={"zipmap": False})
    with pytest.raises(UnsupportedExportError, match=TREES_NOT_APPLICABLE):
        quantize(graph)


def test_a_double_graph_is_sent_to_float32_first() -> None:
    register_converters()
    x, y = make_classification(200, 5, random_state=0)
    graph = to_onnx(LogisticRegression().fit(x, y), x[:1])
    with pytest.raises(UnsupportedExportError, match="float32"):
        quantize(graph)


def test_a_linear_float32_graph_written_as_matmul_is_quantized() -> None:
    register_converters()
    x, y = make_classification(300, 40, random_state=0)
    graph = to_onnx(LogisticRegression().fit(x, y), x[:1].astype(np.float32))
    quantized = quantize(graph, repeats=1, batch_rows=16)
    assert [n.became for n in quantized.nodes] == ["MatMulInteger"]


def test_rows_from_profile_follow_its_bins_and_counts() -> None:
    rng = np.random.default_rng(0)
    data = Batch.from_columns(
        {
            "age": rng.integers(18, 90, 2000),
            "income": rng.lognormal(10, 1, 2000),
            "city": rng.choice(["paris", "lyon"], 2000, p=[0.8, 0.2]).astype(object),
        }
    )
    contract = Contract(
        features=(
            Feature(name="age", dtype=DType.INT, min=18, max=89),
            Feature(name="income", dtype=DType.FLOAT),
            Feature(name="city", dtype=DType.STRING, categories=("paris", "lyon")),
        ),
        task="regression",
    )
    rows = rows_from_profile(Profile.build(data, contract=contract), contract, 4000, seed=3)
    assert rows.columns["age"].dtype == np.int64
    assert rows.columns["age"].min() >= 18 and rows.columns["age"].max() <= 89
    income = rows.columns["income"]
    assert data.columns["income"].min() <= income.min() and income.max() <= data.columns["income"].max()
    assert (
        abs(np.median(income) - np.median(data.columns["income"])) / np.median(data.columns["income"]) < 0.05
    )
    assert abs(np.mean(rows.columns["city"] == "paris") - 0.8) < 0.03
    assert contract.validate(rows).accepted_rows.size == 4000
    again = rows_from_profile(Profile.build(data, contract=contract), contract, 4000, seed=3)
    assert np.array_equal(again.columns["income"], income)


def test_feeds_of_a_batch_give_each_feature_input_its_column() -> None:
    from onnx import TensorProto, helper

    inputs = [
        helper.make_tensor_value_info("age", TensorProto.INT64, [None, 1]),
        helper.make_tensor_value_info("city", TensorProto.STRING, [None, 1]),
    ]
    graph = helper.make_model(helper.make_graph([], "g", inputs, []))
    feeds = feeds_of(graph, Batch.from_columns({"age": [3, 4], "city": ["a", None]}))
    assert feeds["age"].dtype == np.int64 and feeds["age"].shape == (2, 1)
    assert feeds["city"].ravel().tolist() == ["a", ""]
