"""Numeric `SimpleImputer`s written as IsNaN + Where: they run in double, as skl2onnx's do not."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
from sklearn.impute import SimpleImputer

from shipyard.edge.imputer_onnx import register_converters


def _run(imputer: SimpleImputer, x: np.ndarray, tensor: type = DoubleTensorType) -> np.ndarray:
    register_converters()
    graph = convert_sklearn(imputer, initial_types=[("X", tensor([None, x.shape[1]]))], target_opset=21)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"X": x})[0])


@pytest.mark.filterwarnings("ignore:Skipping features without any observed values:UserWarning")
@pytest.mark.parametrize(
    "imputer",
    [
        SimpleImputer(),
        SimpleImputer(strategy="median"),
        SimpleImputer(strategy="most_frequent"),
        SimpleImputer(strategy="constant", fill_value=-7.5),
        SimpleImputer(keep_empty_features=True),
    ],
    ids=["mean", "median", "most_frequent", "constant", "keep_empty"],
)
def test_an_imputer_answers_as_scikit_learn_in_double(imputer: SimpleImputer) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    x[rng.random((40, 3)) < 0.2] = np.nan
    x[:, 2] = np.nan  # all missing: dropped unless keep_empty_features
    fitted = imputer.fit(x)
    np.testing.assert_array_equal(_run(fitted, x), fitted.transform(x))


def test_a_numeric_missing_marker_and_float32_are_imputed_too() -> None:
    x = np.array([[1.0, -1.0], [-1.0, 4.0], [3.0, 2.0]])
    fitted = SimpleImputer(missing_values=-1.0).fit(x)
    np.testing.assert_array_equal(_run(fitted, x), fitted.transform(x))
    as_float = x.astype(np.float32)
    np.testing.assert_allclose(_run(fitted, as_float, FloatTensorType), fitted.transform(x), rtol=1e-6)


def test_an_imputer_with_an_indicator_is_refused() -> None:
    fitted = SimpleImputer(add_indicator=True).fit(np.array([[1.0], [np.nan]]))
    with pytest.raises(NotImplementedError, match="add_indicator"):
        _run(fitted, np.array([[1.0], [np.nan]]))
