"""The linear converters answer as scikit-learn does, alone and inside a Pipeline, in double and float."""

from __future__ import annotations

import warnings
from pathlib import Path
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
from sklearn.svm import SVC, LinearSVC, LinearSVR

from homes import copy_home
from shipyard import Registry, Settings, export
from shipyard.edge.linear_onnx import register_converters
from shipyard.errors import UnsupportedExportError
from shipyard.flavors.base import labels_of

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


def _svc(classes: int, **params: Any) -> tuple[Any, np.ndarray]:
    """A linear-kernel SVC behind a StandardScaler, and rows to score: its training rows and far ones."""
    x, y = make_classification(300, 6, n_informative=4, n_classes=classes, random_state=0)
    with warnings.catch_warnings():  # SVC(probability=True) is deprecated in scikit-learn 1.9
        warnings.simplefilter("ignore", FutureWarning)
        model = make_pipeline(StandardScaler(), SVC(kernel="linear", random_state=0, **params)).fit(x, y)
    rows = np.vstack([x, np.random.default_rng(0).normal(size=(500, 6)) * 4])
    return model, rows


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_svc_with_probabilities_answers_as_its_served_version(dtype: Any) -> None:
    model, rows = _svc(2, probability=True)
    session = _session(model, rows.astype(dtype))
    label, scores = session.run(None, {session.get_inputs()[0].name: rows.astype(dtype)})
    expected = model.predict_proba(rows)
    # libsvm's coupling keeps rows within 0.005 of 0.5 at 0.5 and moves the others in one or two passes
    assert (expected[:, 0] == 0.5).any() and (np.abs(expected[:, 0] - 0.5) > 0.3).any()
    assert np.abs(scores - expected).max() <= TOLERANCE[dtype]
    assert label.tolist() == labels_of(expected, model.classes_).tolist()  # the flavor's argmax
    assert not {"SVMClassifier", "ZipMap"} & {n.op_type for n in to_onnx(model, rows[:1]).graph.node}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_svc_without_probabilities_gives_its_decision_and_labels(dtype: Any) -> None:
    model, rows = _svc(2)
    session = _session(model, rows.astype(dtype))
    label, scores = session.run(None, {session.get_inputs()[0].name: rows.astype(dtype)})
    decision = model.decision_function(rows)
    assert np.abs(scores - np.column_stack([-decision, decision])).max() <= TOLERANCE[dtype]
    assert label.tolist() == model.predict(rows).tolist()


@pytest.mark.parametrize("params", [{}, {"decision_function_shape": "ovo"}, {"break_ties": True}])
def test_multiclass_svc_labels_follow_its_one_vs_one_votes(params: dict[str, Any]) -> None:
    model, rows = _svc(4, **params)
    session = _session(model, rows)
    label, scores = session.run(None, {session.get_inputs()[0].name: rows})
    assert label.tolist() == model.predict(rows).tolist()
    assert model.classes_[scores.argmax(axis=1)].tolist() == label.tolist()  # as the flavor serves it
    if params.get("break_ties"):
        assert np.abs(scores - model.decision_function(rows)).max() <= 1e-12


def test_multiclass_svc_with_probabilities_is_refused_with_what_works() -> None:
    model, rows = _svc(3, probability=True)
    with pytest.raises(UnsupportedExportError, match=r"3 classes: libsvm's pairwise coupling.*LinearSVC"):
        _session(model, rows)


@pytest.mark.filterwarnings("ignore:.*probability.*:FutureWarning")  # skl2onnx reads SVC.probA_
def test_other_kernels_keep_skl2onnx_converter() -> None:
    x, y = make_classification(100, 4, random_state=0)
    register_converters()
    graph = to_onnx(SVC(kernel="rbf").fit(x, y), x[:1], options={"zipmap": False})
    assert "SVMClassifier" in {node.op_type for node in graph.graph.node}


def test_a_registered_linear_svc_exports_with_parity(edge_home: Path, tmp_path: Path) -> None:
    registry = Registry(Settings.for_home(copy_home(edge_home, tmp_path / "home")), actor="tester")
    result = export("svc:1", registry=registry)  # OneHotEncoder + StandardScaler + SVC(probability=True)
    assert result.report.passed
    # the edge rows (the contract's min and max) give large decisions: the summation order shows
    assert result.report.max_abs_diff <= 1e-10 and result.report.label_mismatches == 0
