"""Tree ensembles written as ONNX graphs answer in ONNX Runtime as the models do: in double to
~1e-12 with equal labels, in float with equal labels even at the thresholds; and skl2onnx uses
the same writer for tree models inside pipelines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from onnx import TensorProto, checker
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from fitted_trees import (
    CLASSIFIERS,
    NAN_FREE,
    REGRESSORS,
    TARGETS,
    as_codes,
    categorical_frame,
    fit,
    regression,
    trying_rows,
    unseen_rows,
)
from shipyard.edge.ensemble import Ensemble, Tree
from shipyard.edge.tree_onnx import Dtype, ensemble_graph, register_converters
from shipyard.edge.trees import read_ensemble
from shipyard.errors import UnsupportedExportError

TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """HistGradientBoosting's OpenMP threads spin against each other on a busy machine."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def _session(model: Any) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _score(ensemble: Ensemble, rows: np.ndarray, dtype: Dtype) -> list[np.ndarray]:
    graph = ensemble_graph(ensemble, dtype=dtype)
    return list(_session(graph).run(None, {"X": rows.astype(dtype)}))


def _as_seen(rows: np.ndarray, dtype: str) -> np.ndarray:
    """The rows as the graph of `dtype` receives them, in float64 for the model."""
    return rows.astype(np.float32).astype(np.float64) if dtype == "float32" else rows


CLASSIFIER_CASES = [
    ("tree", "binary"),
    ("extra_trees", "multiclass"),
    ("forest", "strings"),
    ("boosting", "multiclass"),
    ("boosting", "strings"),
    ("boosting_zero_init", "binary"),
    ("histogram", "binary"),
    ("histogram", "multiclass"),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("name", "target"), CLASSIFIER_CASES)
def test_classifier_graph_answers_as_the_model(name: str, target: str, dtype: Dtype) -> None:
    model, x = fit(CLASSIFIERS[name](), TARGETS[target]())
    ensemble = read_ensemble(model)
    assert ensemble is not None
    rows = _as_seen(trying_rows(ensemble, x, missing=type(model).__name__ not in NAN_FREE), dtype)
    label, probabilities = _score(ensemble, rows, dtype)
    np.testing.assert_allclose(probabilities, model.predict_proba(rows), rtol=0, atol=TOLERANCE[dtype])
    assert (label == model.predict(rows)).all()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["tree", "forest", "boosting", "histogram"])
def test_regressor_graph_answers_as_the_model(name: str, dtype: Dtype) -> None:
    model, x = fit(REGRESSORS[name](), regression())
    ensemble = read_ensemble(model)
    assert ensemble is not None
    rows = _as_seen(trying_rows(ensemble, x, missing=type(model).__name__ not in NAN_FREE), dtype)
    (variable,) = _score(ensemble, rows, dtype)
    assert variable.shape == (len(rows), 1)
    # float32 sums lose ~1e-7 of the values' size (up to ~30 here)
    atol = 1e-10 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(variable[:, 0], model.predict(rows), rtol=0, atol=atol)


@pytest.mark.parametrize("name", ["forest", "histogram"])
def test_float32_rows_next_to_each_threshold_keep_their_side(name: str) -> None:
    model, x = fit(CLASSIFIERS[name](), TARGETS["multiclass"]())
    ensemble = read_ensemble(model)
    assert ensemble is not None
    parts = []
    for column, thresholds in ensemble.split_points().items():
        points = thresholds[np.isfinite(thresholds)]
        single = points.astype(np.float32)
        below = np.where(
            single.astype(np.float64) > points, np.nextafter(single, np.float32(-np.inf)), single
        )
        for value in (below, np.nextafter(below, np.float32(np.inf))):
            at = np.nan_to_num(x[: len(value)]).copy()
            at[:, column] = value
            parts.append(at)
    rows = _as_seen(np.vstack(parts), "float32")
    label, probabilities = _score(ensemble, rows, "float32")
    assert (label == model.predict(rows)).all()
    np.testing.assert_allclose(probabilities, model.predict_proba(rows), rtol=0, atol=1e-5)


def test_strict_thresholds_in_float32_split_as_in_float64() -> None:
    threshold = 0.1  # no float32: the nearest, float32(0.1), lies above it
    stump = Tree(
        feature=np.array([0, -1, -1]),
        threshold=np.array([threshold, 0.0, 0.0]),
        left=np.array([1, -1, -1]),
        right=np.array([2, -1, -1]),
        missing_left=np.array([False, False, False]),
        value=np.array([[0.0], [-1.0], [1.0]]),
    )
    strict = Ensemble((stump,), 1, 1, (0,), np.zeros(1), strict=True, model="strict")
    near = np.float32(threshold)
    values = np.array([np.nextafter(near, np.float32(-1)), near, np.nextafter(near, np.float32(1)), np.nan])
    rows = values.astype(np.float64).reshape(-1, 1)
    (variable,) = _score(strict, rows, "float32")
    np.testing.assert_array_equal(variable[:, 0], strict.answers(rows))
    (variable,) = _score(strict, rows, "float64")
    np.testing.assert_array_equal(variable[:, 0], strict.answers(rows))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_categorical_histogram_graph_answers_as_the_model(dtype: Dtype) -> None:
    frame, score = categorical_frame()
    model = HistGradientBoostingClassifier(
        max_iter=15, categorical_features=["letter", "level"], random_state=0
    )
    model.fit(frame, np.digitize(score, [0.0, 1.0]))
    ensemble = read_ensemble(model)
    assert ensemble is not None
    rows = unseen_rows(frame)
    for column in ("a", "b", "level"):
        rows[column] = _as_seen(rows[column].to_numpy(), dtype)
    label, probabilities = _score(ensemble, as_codes(ensemble, rows), dtype)
    np.testing.assert_allclose(probabilities, model.predict_proba(rows), rtol=0, atol=TOLERANCE[dtype])
    assert (label == model.predict(rows)).all()


def test_outputs_are_named_and_typed_as_the_model_answers() -> None:
    model, _ = fit(CLASSIFIERS["forest"](), TARGETS["strings"]())
    ensemble = read_ensemble(model)
    assert ensemble is not None
    graph = ensemble_graph(ensemble, dtype="float32")
    checker.check_model(graph)
    kinds = {o.name: o.type.tensor_type.elem_type for o in graph.graph.output}
    assert kinds == {"label": TensorProto.STRING, "probabilities": TensorProto.FLOAT}
    assert [i.name for i in graph.graph.input] == ["X"]
    model, _ = fit(CLASSIFIERS["histogram"](), TARGETS["binary"]())
    kinds = {o.name: o.type.tensor_type.elem_type for o in ensemble_graph(read_ensemble(model)).graph.output}
    assert kinds == {"label": TensorProto.INT64, "probabilities": TensorProto.DOUBLE}
    model, _ = fit(REGRESSORS["forest"](), regression())
    assert [o.name for o in ensemble_graph(read_ensemble(model)).graph.output] == ["variable"]


def test_one_leaf_trees_and_roots_next_to_leaves_score_right() -> None:
    ints, floats = (lambda *v: np.array(v, np.int64)), (lambda *v: np.array(v, np.float64))
    leaf = Tree(ints(-1), floats(0), ints(-1), ints(-1), np.zeros(1, bool), floats(0.25).reshape(1, 1))
    # written after the one-leaf tree, this root's left leaf and right node get equal numbers
    split = Tree(
        ints(0, -1, 1, -1, -1),
        floats(0, 0, 0.5, 0, 0),
        ints(1, -1, 3, -1, -1),
        ints(2, -1, 4, -1, -1),
        np.array([True, False, False, False, False]),
        floats(0, 1, 0, 2, 3).reshape(-1, 1),
    )
    ensemble = Ensemble((leaf, split), 2, 1, (0, 0), floats(0.0), model="synthetic")
    rows = np.array([[-1, 0], [1, 0], [1, 1], [np.nan, 1], [0, 0.5], [0, 0.6]], float)
    (variable,) = _score(ensemble, rows, "float64")
    np.testing.assert_array_equal(variable[:, 0], ensemble.answers(rows))


def test_a_hundred_deep_trees_build_in_well_under_a_second() -> None:
    rng = np.random.default_rng(0)
    depth, n_trees, n_features = 8, 120, 10
    inner = 2**depth - 1
    nodes = 2 * inner + 1
    children = np.arange(nodes)
    left = np.where(children < inner, 2 * children + 1, -1)
    right = np.where(children < inner, 2 * children + 2, -1)
    trees = tuple(
        Tree(
            feature=np.where(children < inner, rng.integers(0, n_features, nodes), -1),
            threshold=rng.normal(size=nodes),
            left=left,
            right=right,
            missing_left=rng.random(nodes) < 0.5,
            value=rng.normal(size=(nodes, 1)) * 0.1,
        )
        for _ in range(n_trees)
    )
    ensemble = Ensemble(
        trees, n_features, 1, (0,) * n_trees, np.array([0.3]), post="logistic", classes=(0, 1)
    )
    ensemble_graph(ensemble)  # imports onnx outside the timing
    started = time.perf_counter()
    graph = ensemble_graph(ensemble)
    took = time.perf_counter() - started
    assert took < 1.0, f"{n_trees} trees of depth {depth} took {took:.2f} s to write"
    rows = rng.normal(size=(300, n_features))
    rows[rng.random(rows.shape) < 0.1] = np.nan
    label, probabilities = _session(graph).run(None, {"X": rows})
    np.testing.assert_allclose(probabilities, ensemble.answers(rows), rtol=0, atol=1e-12)
    assert (label == ensemble.labels(rows)).all()


def _frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10, 1, n),
            "city": rng.choice(["a", "b", "c", "d"], n),
            "kind": rng.choice(["x", "y", "z"], n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "age"] = np.nan
    y = np.array(["bad", "good", "ok"])[
        ((frame.age.fillna(40) > 42).astype(int) + (frame.city == "a")).to_numpy()
    ]
    return frame, y


def _convert(pipeline: Pipeline, frame: pd.DataFrame, number: Any, dtype: Any) -> tuple[list[str], list[Any]]:
    register_converters()
    register_converters()  # twice: harmless
    types = [
        (c, number([None, 1]) if frame[c].dtype.kind == "f" else StringTensorType([None, 1])) for c in frame
    ]
    converted = convert_sklearn(
        pipeline,
        initial_types=types,
        options={id(pipeline.steps[-1][1]): {"zipmap": False}},
        target_opset={"": 21, "ai.onnx.ml": 5},
    )
    assert "ZipMap" not in {node.op_type for node in converted.graph.node}
    session = _session(converted)
    feeds = {
        c: frame[c].to_numpy(dtype=dtype if frame[c].dtype.kind == "f" else object).reshape(-1, 1)
        for c in frame
    }
    return [o.name for o in session.get_outputs()], session.run(None, feeds)


def test_pipeline_with_histogram_boosting_converts_through_skl2onnx() -> None:
    frame, y = _frame()
    prepare = ColumnTransformer(
        [
            ("scaled", StandardScaler(), ["age"]),
            ("kept", "passthrough", ["income"]),
            ("onehot", OneHotEncoder(handle_unknown="ignore"), ["city"]),
            ("ordinal", OrdinalEncoder(), ["kind"]),
        ]
    )
    pipeline = Pipeline([("prepare", prepare), ("model", HistGradientBoostingClassifier(max_iter=15))]).fit(
        frame, y
    )
    names, (label, probabilities) = _convert(pipeline, frame, DoubleTensorType, np.float64)
    assert names == ["label", "probabilities"]
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(frame), rtol=0, atol=1e-12)
    assert (label == pipeline.predict(frame)).all()


def test_histogram_categoricals_after_an_ordinal_encoder_convert_through_skl2onnx() -> None:
    frame, y = _frame()
    codes = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    prepare = ColumnTransformer(
        [("codes", codes, ["city", "kind"]), ("kept", "passthrough", ["age", "income"])]
    )
    model = HistGradientBoostingClassifier(max_iter=15, categorical_features=[0, 1], random_state=0)
    pipeline = Pipeline([("prepare", prepare), ("model", model)]).fit(frame, y)
    rows = frame.copy()
    rows.loc[:40, "city"] = "never seen"  # -1 from the encoder: HGB's missing-value path
    _, (label, probabilities) = _convert(pipeline, rows, DoubleTensorType, np.float64)
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(rows), rtol=0, atol=1e-12)
    assert (label == pipeline.predict(rows)).all()


def test_float_pipeline_with_an_imputer_and_a_forest_converts_through_skl2onnx() -> None:
    frame, y = _frame()
    for column in ("age", "income"):
        frame[column] = frame[column].astype(np.float32).astype(np.float64)
    prepare = ColumnTransformer(
        [
            ("age", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["age"]),
            ("kept", "passthrough", ["income"]),
            ("onehot", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    forest = RandomForestClassifier(10, max_depth=5, random_state=0)
    pipeline = Pipeline([("prepare", prepare), ("model", forest)]).fit(frame.drop(columns="kind"), y)
    _, (label, probabilities) = _convert(pipeline, frame.drop(columns="kind"), FloatTensorType, np.float32)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(frame), rtol=0, atol=1e-5)
    assert (label == pipeline.predict(frame)).all()


def test_regressor_pipeline_gives_its_variable() -> None:
    frame, _ = _frame()
    frame = frame.fillna(0.0)
    prepare = ColumnTransformer([("codes", OrdinalEncoder(), ["city"]), ("kept", "passthrough", ["age"])])
    pipeline = Pipeline([("prepare", prepare), ("model", GradientBoostingRegressor(n_estimators=10))])
    pipeline.fit(frame[["age", "city"]], frame.income / 1000)
    register_converters()
    converted = convert_sklearn(
        pipeline,
        initial_types=[("age", DoubleTensorType([None, 1])), ("city", StringTensorType([None, 1]))],
        target_opset={"": 21, "ai.onnx.ml": 5},
    )
    session = _session(converted)
    feeds = {"age": frame[["age"]].to_numpy(), "city": frame[["city"]].to_numpy(dtype=object)}
    (variable,) = session.run(None, feeds)
    assert [o.name for o in session.get_outputs()] == ["variable"]
    np.testing.assert_allclose(variable[:, 0], pipeline.predict(frame), rtol=0, atol=1e-10)


def test_conversion_below_ai_onnx_ml_5_is_refused_with_what_to_pass() -> None:
    model, x = fit(CLASSIFIERS["histogram"](), TARGETS["binary"]())
    register_converters()
    with pytest.raises(UnsupportedExportError, match='"ai.onnx.ml": 5'):
        convert_sklearn(
            model,
            initial_types=[("X", DoubleTensorType([None, x.shape[1]]))],
            options={id(model): {"zipmap": False}},
            target_opset={"": 21, "ai.onnx.ml": 3},
        )


@pytest.mark.parametrize("package", ["xgboost", "lightgbm"])
def test_boosters_inside_pipelines_convert_through_skl2onnx(package: str) -> None:
    framework = pytest.importorskip(package)
    x, y = TARGETS["multiclass"]()
    if package == "xgboost":
        booster = framework.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1)
    else:
        booster = framework.LGBMClassifier(n_estimators=10, n_jobs=1, verbose=-1)
    pipeline = Pipeline([("scale", StandardScaler()), ("model", booster)]).fit(x, y)
    register_converters()
    converted = convert_sklearn(
        pipeline,
        initial_types=[("X", DoubleTensorType([None, x.shape[1]]))],
        options={id(booster): {"zipmap": False}},
        target_opset={"": 21, "ai.onnx.ml": 5},
    )
    label, probabilities = _session(converted).run(None, {"X": x})
    # XGBoost sums its leaves in float32: ~1e-7 from the double graph
    atol = 1e-6 if package == "xgboost" else 1e-12
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(x), rtol=0, atol=atol)
    assert (label == pipeline.predict(x)).all()


def test_conversion_with_zipmap_is_refused_with_the_option_to_pass() -> None:
    model, x = fit(CLASSIFIERS["forest"](), TARGETS["strings"]())
    register_converters()
    with pytest.raises(UnsupportedExportError, match="'zipmap': False"):
        convert_sklearn(
            model,
            initial_types=[("X", DoubleTensorType([None, x.shape[1]]))],
            target_opset={"": 21, "ai.onnx.ml": 5},
        )


def test_class_indices_as_labels_when_asked() -> None:
    model, x = fit(CLASSIFIERS["forest"](), TARGETS["strings"]())
    register_converters()
    converted = convert_sklearn(
        model,
        initial_types=[("X", DoubleTensorType([None, x.shape[1]]))],
        options={id(model): {"zipmap": False, "nocl": True}},
        target_opset={"": 21, "ai.onnx.ml": 5},
    )
    label, _ = _session(converted).run(None, {"X": np.nan_to_num(x)})
    assert label.dtype == np.int64
    assert (model.classes_[label] == model.predict(np.nan_to_num(x))).all()
