"""The linear converters answer as scikit-learn does, alone and inside a Pipeline, in double and float."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from skl2onnx import to_onnx
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC, LinearSVR

from shipyard.edge.linear_onnx import register_converters

TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}
CLASSIFIERS = [
    LogisticRegression(),
    SGDClassifier(loss="log_loss", random_state=0),
    SGDClassifier(loss="modified_huber", random_state=0),
    SGDClassifier(loss="hinge", random_state=0),
    RidgeClassifier(),
    LinearSVC(),
]
REGRESSORS = [LinearRegression(), Ridge(), Lasso(), ElasticNet(), SGDRegressor(random_state=0), LinearSVR()]


def _session(model: Any, x: np.ndarray) -> ort.InferenceSession:
    register_converters()
    graph = to_onnx(model, x[:1])
    return ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])


def _expected_scores(model: Any, x: np.ndarray) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(x))
    decision = np.asarray(model.decision_function(x))
    return np.column_stack([-decision, decision]) if decision.ndim == 1 else decision


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("model", CLASSIFIERS, ids=lambda m: f"{type(m).__name__}-{getattr(m, 'loss', '')}")
def test_classifier_in_a_pipeline_answers_as_scikit_learn(model: Any, classes: int, dtype: Any) -> None:
    x, y = make_classification(300, 6, n_informative=4, n_classes=classes, random_state=0)
    labels = np.array(["ant", "bee", "cat"])[y]
    pipeline = make_pipeline(StandardScaler(), clone(model)).fit(x, labels)
    x = x.astype(dtype)
    session = _session(pipeline, x)
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    label, scores = session.run(None, {session.get_inputs()[0].name: x})
    assert label.tolist() == pipeline.predict(x).tolist()
    assert np.abs(scores - _expected_scores(pipeline, x)).max() <= TOLERANCE[dtype]


@pytest.mark.parametrize("model", CLASSIFIERS, ids=lambda m: f"{type(m).__name__}-{getattr(m, 'loss', '')}")
def test_classifier_alone_in_double_keeps_integer_labels(model: Any) -> None:
    x, y = make_classification(200, 5, n_informative=3, n_classes=3, random_state=1)
    fitted = clone(model).fit(x, y + 10)
    session = _session(fitted, x)
    label, scores = session.run(None, {session.get_inputs()[0].name: x})
    assert label.dtype == np.int64
    assert label.tolist() == fitted.predict(x).tolist()
    # Unscaled, SGD's weights are in the hundreds: the MatMul's summation order shows near 1e-11.
    assert np.abs(scores - _expected_scores(fitted, x)).max() <= 1e-10


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("model", REGRESSORS, ids=lambda m: type(m).__name__)
def test_regressor_answers_as_scikit_learn_with_matmul(model: Any, dtype: Any) -> None:
    x, y = make_regression(200, 5, noise=1.0, random_state=0)
    y = y / np.abs(y).max()
    for fitted in (clone(model).fit(x, y), make_pipeline(StandardScaler(), clone(model)).fit(x, y)):
        session = _session(fitted, x.astype(dtype))
        assert [o.name for o in session.get_outputs()] == ["variable"]
        (value,) = session.run(None, {session.get_inputs()[0].name: x.astype(dtype)})
        assert value.shape == (len(x), 1)
        assert np.abs(value[:, 0] - fitted.predict(x)).max() <= TOLERANCE[dtype]


def test_graph_is_matmul_and_add() -> None:
    x, y = make_classification(100, 4, random_state=0)
    register_converters()
    ops = {node.op_type for node in to_onnx(LogisticRegression().fit(x, y), x[:1]).graph.node}
    assert {"MatMul", "Add", "Sigmoid"} <= ops
    assert not ops & {"LinearClassifier", "ZipMap"}


def test_one_vs_rest_rows_whose_probabilities_all_vanish_are_uniform() -> None:
    x, y = make_classification(300, 4, n_informative=3, n_redundant=0, n_classes=3, random_state=2)
    model = SGDClassifier(loss="log_loss", random_state=0).fit(x, y)
    far = x * 1e6
    session = _session(model, far)
    _, scores = session.run(None, {session.get_inputs()[0].name: far})
    expected = model.predict_proba(far)
    assert np.isclose(expected, 1 / 3).all(axis=1).any()  # the case is exercised
    assert np.abs(scores - expected).max() <= 1e-12
