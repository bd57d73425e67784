"""The ONNX flavor: graphs run with onnxruntime; probabilities read from tensors or ZipMaps."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from shipyard.core.batch import Batch
from shipyard.errors import FlavorError, PredictionError
from shipyard.flavors.base import LoadOptions
from shipyard.flavors.onnx import ONNXFlavor

FLAVOR = ONNXFlavor()


def _sum_graph() -> object:
    """A graph of two named inputs that outputs their sum."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [None])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [None])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "sum", [a, b], [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


@pytest.mark.parametrize("zipmap", [True, False])
def test_a_classifier_s_probabilities_are_read_from_a_zipmap_or_a_tensor(zipmap: bool) -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    graph = to_onnx(model, X[:1].astype(np.float32), target_opset=15, options={"zipmap": zipmap})
    assert FLAVOR.accepts(graph)
    saved = FLAVOR.save(graph)
    saved.meta["classes"] = [0, 1, 2]  # as the registry records them from the training data
    predictions = FLAVOR.load(saved, LoadOptions()).predict(
        Batch.from_columns({f"f{i}": X[:, i] for i in range(4)})
    )
    assert predictions.probabilities is not None
    np.testing.assert_allclose(predictions.probabilities, model.predict_proba(X), atol=1e-4)
    assert predictions.values.tolist() == model.predict(X).tolist()


def test_a_graph_of_named_inputs_is_fed_by_column_name() -> None:
    saved = FLAVOR.save(_sum_graph())
    assert saved.meta["inputs"] == saved.meta["feature_names"] == ["a", "b"]
    predictor = FLAVOR.load(saved, LoadOptions())
    predictions = predictor.predict(Batch.from_columns({"b": [1.0, 2.0], "a": [10.0, 20.0]}))
    assert (predictions.task, predictions.values.tolist()) == ("regression", [11.0, 22.0])
    with pytest.raises(PredictionError, match="has input 'b', which the contract does not name"):
        predictor.predict(Batch.from_columns({"a": [1.0]}))


def test_bytes_that_are_not_an_onnx_model_are_refused() -> None:
    with pytest.raises(FlavorError, match="not an ONNX model"):
        FLAVOR.read_file(b"not a graph", LoadOptions())
    assert not FLAVOR.accepts(object())
