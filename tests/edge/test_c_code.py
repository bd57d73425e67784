"""The C export, compiled with gcc: bit parity with `Ensemble.answers` and with scikit-learn."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
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
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.svm import SVC, LinearSVC, LinearSVR

from shipyard.core.batch import Batch
from shipyard.edge.boosters import read_booster
from shipyard.edge.c_code import ensemble_c
from shipyard.edge.c_harness import CFLAGS, c_predictor, compile_c
from shipyard.edge.c_linear import linear_c, model_c
from shipyard.edge.c_source import Prepare, c_name
from shipyard.edge.ensemble import Ensemble, Tree
from shipyard.errors import ExportError, UnsupportedExportError

EXACT = {"rtol": 1e-12, "atol": 1e-12}


def sklearn_tree(estimator: Any) -> Tree:
    """A fitted scikit-learn tree in the neutral form (what `edge/trees.py` reads, written here
    so that these tests stand alone)."""
    tree = estimator.tree_
    leaf = tree.children_left < 0
    return Tree(
        feature=np.where(leaf, -1, tree.feature).astype(np.int64),
        threshold=tree.threshold.astype(np.float64),
        left=tree.children_left.astype(np.int64),
        right=tree.children_right.astype(np.int64),
        missing_left=tree.missing_go_to_left.astype(bool),
        value=np.asarray(tree.value[:, 0, :], dtype=np.float64),
    )


def read_forest(model: Any) -> Ensemble | None:
    """A random forest as an `Ensemble`; None for anything else."""
    if not isinstance(model, RandomForestClassifier | RandomForestRegressor):
        return None
    trees = tuple(sklearn_tree(e) for e in model.estimators_)
    classes = tuple(model.classes_.tolist()) if hasattr(model, "classes_") else None
    width = len(classes) if classes else 1
    return Ensemble(
        trees=trees,
        n_features=model.n_features_in_,
        n_outputs=width,
        targets=(None,) * len(trees),
        base=np.zeros(width),
        average=True,
        float32_inputs=True,
        classes=classes,
        model=type(model).__name__,
    )


def boosted(seed: int = 0, *, n_features: int = 5, n_classes: int = 3, rounds: int = 12) -> Ensemble:
    """A multiclass boosting-like ensemble with every feature of the form: one tree per class per
    round, strict splits, missing values either way, categorical splits on column 0, softmax."""
    rng = np.random.default_rng(seed)
    trees = []
    for _ in range(rounds * n_classes):
        n_inner = 7
        feature = np.concatenate(
            [rng.integers(0, n_features, n_inner), -np.ones(n_inner + 1, dtype=np.int64)]
        )
        left = np.concatenate([2 * np.arange(n_inner) + 1, -np.ones(n_inner + 1, dtype=np.int64)])
        right = np.concatenate([2 * np.arange(n_inner) + 2, -np.ones(n_inner + 1, dtype=np.int64)])
        threshold = np.round(rng.normal(size=2 * n_inner + 1), 1)
        categories = {
            int(node): np.sort(rng.choice(40, size=3, replace=False)).astype(np.float64)
            for node in range(n_inner)
            if feature[node] == 0
        }
        trees.append(
            Tree(
                feature=feature,
                threshold=threshold,
                left=left,
                right=right,
                missing_left=rng.random(2 * n_inner + 1) < 0.5,
                value=rng.normal(size=(2 * n_inner + 1, 1)),
                categories=categories,
            )
        )
    return Ensemble(
        trees=tuple(trees),
        n_features=n_features,
        n_outputs=n_classes,
        targets=tuple(i % n_classes for i in range(len(trees))),
        base=rng.normal(size=n_classes),
        post="softmax",
        strict=True,
        categories={0: tuple(f"c{i}" for i in range(40))},
        classes=tuple(f"k{i}" for i in range(n_classes)),
        model="HandBoostedClassifier",
    )


def edge_rows(ensemble: Ensemble, rng: np.random.Generator, n: int = 400) -> np.ndarray[Any, Any]:
    """Random rows, then rows with missing values, then rows at every split threshold."""
    x = np.round(rng.normal(size=(n, ensemble.n_features)), 1)
    x[: n // 2, 0] = rng.integers(-2, 45, n // 2)  # codes, some unseen (>= 40) or negative
    x[n // 2 : n // 2 + 20, 0] = 1.5  # not a code at all
    x[rng.random(x.shape) < 0.1] = np.nan
    at: list[np.ndarray[Any, Any]] = []
    for column, points in ensemble.split_points().items():
        for point in points:
            row = x[len(at) % n].copy()
            row[column] = point
            at.append(row)
    return np.vstack([x, *at]) if at else x


@pytest.fixture(scope="module")
def forest() -> tuple[RandomForestClassifier, np.ndarray[Any, Any]]:
    x, y = make_classification(600, 8, n_informative=5, n_classes=3, random_state=0)
    x[::7, 2] = np.nan
    return RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(x, y), x


def test_forest_answers_as_its_ensemble_to_the_bit_in_double(forest: Any, tmp_path: Path) -> None:
    model, x = forest
    ensemble = read_forest(model)
    assert ensemble is not None
    rows = edge_rows(ensemble, np.random.default_rng(1))
    compiled = compile_c(ensemble_c(ensemble, name="forest"), workdir=tmp_path)
    np.testing.assert_allclose(compiled.predict(rows), ensemble.answers(rows), **EXACT)
    np.testing.assert_allclose(compiled.predict(x), model.predict_proba(x), **EXACT)
    assert (compiled.labels(rows) == ensemble.answers(rows).argmax(axis=1)).all()


def test_forest_in_float32_is_within_1e4_with_equal_labels(forest: Any, tmp_path: Path) -> None:
    model, _ = forest
    ensemble = read_forest(model)
    assert ensemble is not None
    rows = edge_rows(ensemble, np.random.default_rng(2))
    source = ensemble_c(ensemble, name="forest32", dtype="float32")
    assert "double" not in source.source
    compiled = compile_c(source, workdir=tmp_path)
    np.testing.assert_allclose(compiled.predict(rows), ensemble.answers(rows), atol=1e-4)
    assert (compiled.labels(rows) == ensemble.answers(rows).argmax(axis=1)).all()


def test_float32_thresholds_split_float32_inputs_as_the_model(tmp_path: Path) -> None:
    below = np.float32(0.1)
    above = np.nextafter(below, np.float32(1))
    middle = (float(below) + float(above)) / 2
    for strict in (False, True):
        tree = Tree(
            feature=np.array([0, -1, -1]),
            threshold=np.array([middle, 0.0, 0.0]),
            left=np.array([1, -1, -1]),
            right=np.array([2, -1, -1]),
            missing_left=np.array([False, False, False]),
            value=np.array([[0.0], [1.0], [2.0]]),
        )
        for float32_inputs in (True, False):
            ensemble = Ensemble(
                trees=(tree,),
                n_features=1,
                n_outputs=1,
                targets=(None,),
                base=np.zeros(1),
                strict=strict,
                float32_inputs=float32_inputs,
            )
            source = ensemble_c(ensemble, name="split", dtype="float32")
            compiled = compile_c(source, workdir=tmp_path / f"{strict}{float32_inputs}")
            # A model that rounds its inputs is exact on every float32; one that compares in
            # float64 still splits an input at the threshold as it did.
            rows = np.array([[below], [above]]) if float32_inputs else np.array([[middle]])
            np.testing.assert_array_equal(compiled.predict(rows)[:, 0], ensemble.answers(rows))


def test_boosting_with_categories_strict_splits_and_softmax_is_exact(tmp_path: Path) -> None:
    ensemble = boosted()
    rows = edge_rows(ensemble, np.random.default_rng(3))
    compiled = compile_c(ensemble_c(ensemble, name="boosted"), workdir=tmp_path)
    np.testing.assert_allclose(compiled.predict(rows), ensemble.answers(rows), **EXACT)
    assert (compiled.labels(rows) == ensemble.answers(rows).argmax(axis=1)).all()
    compiled32 = compile_c(ensemble_c(ensemble, name="boosted", dtype="float32"), workdir=tmp_path / "32")
    np.testing.assert_allclose(compiled32.predict(rows), ensemble.answers(rows), atol=1e-4)


def test_binary_boosting_gives_two_probabilities_by_the_logistic_function(tmp_path: Path) -> None:
    ensemble = boosted(n_classes=1)
    binary = replace(ensemble, post="logistic", classes=("no", "yes"), strict=False)
    rows = edge_rows(binary, np.random.default_rng(4))
    compiled = compile_c(ensemble_c(binary, name="binary"), workdir=tmp_path)
    assert compiled.source.n_outputs == 2
    np.testing.assert_allclose(compiled.predict(rows), binary.answers(rows), **EXACT)


def test_category_code_maps_known_texts_and_nothing_else(tmp_path: Path) -> None:
    compiled = compile_c(ensemble_c(boosted(), name="cats"), workdir=tmp_path)
    assert compiled.category_code(0, "c0") == 0.0
    assert compiled.category_code(0, "c39") == 39.0
    assert np.isnan(compiled.category_code(0, "c40"))
    assert np.isnan(compiled.category_code(0, None))
    assert np.isnan(compiled.category_code(1, "c0"))
    assert "'c3'=3" in compiled.source.header


def test_predictor_scores_a_batch_with_category_texts(tmp_path: Path) -> None:
    ensemble = boosted()
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 45, 50)
    texts = np.array([f"c{c}" if c < 43 else None for c in codes], dtype=object)
    others = {f"f{i}": rng.normal(size=50) for i in range(1, 5)}
    batch = Batch.from_columns({"f0": texts, **others})
    predictions = c_predictor(compile_c(ensemble_c(ensemble, name="batch"), workdir=tmp_path))(batch)
    x = np.column_stack([np.where(codes < 40, codes, np.nan), *others.values()])
    assert predictions.probabilities is not None
    np.testing.assert_allclose(predictions.probabilities, ensemble.answers(x), **EXACT)
    assert list(predictions.values) == [f"k{i}" for i in ensemble.answers(x).argmax(axis=1)]


def test_forest_regressor_after_a_scaler_and_imputer_matches_the_pipeline(tmp_path: Path) -> None:
    x, y = make_regression(400, 6, random_state=0)
    x[::5, 1] = np.nan
    pipeline = make_pipeline(
        SimpleImputer(strategy="median"),
        MinMaxScaler(clip=True),
        RandomForestRegressor(10, max_depth=6, random_state=0),
    ).fit(x, y)
    written = model_c(pipeline, name="reg", dtype="float64", read_ensemble=read_forest)
    assert written.ensemble is None  # its thresholds are on scaled values: no edge rows from them
    rows = np.vstack([x, x * 3])
    np.testing.assert_allclose(
        compile_c(written.source, workdir=tmp_path).predict(rows)[:, 0], pipeline.predict(rows), **EXACT
    )


CLASSIFIERS = [
    LogisticRegression(max_iter=1000),
    OneVsRestClassifier(LogisticRegression(max_iter=1000)),
    SGDClassifier(loss="log_loss", random_state=0),
    LinearSVC(),
    RidgeClassifier(),
    SGDClassifier(loss="hinge", random_state=0),
]


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("model", CLASSIFIERS, ids=lambda m: f"{type(m).__name__}-{getattr(m, 'loss', '')}")
def test_linear_classifier_answers_as_scikit_learn(model: Any, n_classes: int, tmp_path: Path) -> None:
    x, y = make_classification(300, 6, n_informative=4, n_classes=n_classes, random_state=0)
    fitted = model.fit(x, np.array(["a", "b", "c"])[y])
    source = linear_c(fitted, name="linear")
    compiled = compile_c(source, workdir=tmp_path)
    rows = np.vstack([x, x * 10])
    expected = fitted.predict_proba(rows) if source.scores else fitted.decision_function(rows)
    np.testing.assert_allclose(compiled.predict(rows), expected.reshape(len(rows), -1), **EXACT)
    # Shipyard labels a scoring classifier by its most probable class (`flavors.base.labels_of`),
    # scikit-learn's `predict` by the largest decision: they differ only where probabilities tie.
    served = fitted.classes_[expected.argmax(axis=1)] if source.scores else fitted.predict(rows)
    assert list(np.asarray(source.classes)[compiled.labels(rows)]) == list(served)
    float32 = compile_c(linear_c(fitted, name="linear", dtype="float32"), workdir=tmp_path / "32")
    np.testing.assert_allclose(float32.predict(x), expected[: len(x)].reshape(len(x), -1), atol=1e-4)


@pytest.mark.parametrize(
    "model",
    [
        LinearRegression(),
        Ridge(),
        Lasso(alpha=0.1),
        ElasticNet(alpha=0.1),
        SGDRegressor(random_state=0),
        LinearSVR(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_linear_regressor_answers_as_scikit_learn(model: Any, tmp_path: Path) -> None:
    x, y = make_regression(300, 6, noise=1.0, random_state=0)
    fitted = model.fit(x, y)
    compiled = compile_c(linear_c(fitted, name="reg"), workdir=tmp_path)
    np.testing.assert_allclose(compiled.predict(x)[:, 0], fitted.predict(x), **EXACT)


def test_scaled_imputed_logistic_pipeline_answers_as_scikit_learn(tmp_path: Path) -> None:
    x, y = make_classification(300, 6, random_state=1)
    x[::4, 3] = np.nan
    pipeline = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), LogisticRegression()).fit(x, y)
    written = model_c(pipeline, name="pipe", dtype="float64", read_ensemble=read_forest)
    assert written.ensemble is None
    np.testing.assert_allclose(
        compile_c(written.source, workdir=tmp_path).predict(x), pipeline.predict_proba(x), **EXACT
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_mlp_is_refused_with_onnx_named_as_what_works() -> None:
    x, y = make_classification(60, 4, random_state=0)
    mlp = MLPClassifier(hidden_layer_sizes=(3,), max_iter=20).fit(x, y)
    with pytest.raises(UnsupportedExportError, match=r"MLPClassifier: the C export covers .*--to onnx"):
        model_c(mlp, name="mlp", dtype="float64", read_ensemble=read_forest)


def test_one_hot_encoder_in_a_pipeline_is_refused_naming_the_step() -> None:
    x = np.array([["a"], ["b"], ["a"], ["b"]])
    pipeline = make_pipeline(OneHotEncoder(), LogisticRegression()).fit(x, [0, 1, 0, 1])
    with pytest.raises(UnsupportedExportError, match=r"OneHotEncoder: .*numeric features only.*--to onnx"):
        model_c(pipeline, name="p", dtype="float64", read_ensemble=read_forest)


def test_a_model_with_no_c_writer_is_refused_by_its_class() -> None:
    x, y = make_classification(60, 4, random_state=0)
    with pytest.raises(
        UnsupportedExportError, match=r"^KNeighborsClassifier: the C export covers tree ensembles"
    ):
        model_c(KNeighborsClassifier().fit(x, y), name="knn", dtype="float64", read_ensemble=read_forest)
    with pytest.raises(UnsupportedExportError, match=r"^SVC: .*pairwise coupling.*LinearSVC"):
        model_c(SVC(kernel="linear").fit(x, y), name="svc", dtype="float64", read_ensemble=read_forest)


def test_a_regressor_of_several_targets_is_refused() -> None:
    x, y = make_regression(60, 4, n_targets=2, random_state=0)
    with pytest.raises(UnsupportedExportError, match="LinearRegression with 2 targets"):
        linear_c(LinearRegression().fit(x, y), name="two")


def test_sgd_modified_huber_is_refused_with_the_losses_that_work() -> None:
    x, y = make_classification(60, 4, random_state=0)
    with pytest.raises(UnsupportedExportError, match="log_loss"):
        linear_c(SGDClassifier(loss="modified_huber").fit(x, y), name="sgd")


def test_a_compiler_warning_fails_the_build(tmp_path: Path) -> None:
    assert {"-Wall", "-Wextra", "-Werror", "-pedantic", "-std=c99"} <= set(CFLAGS)
    source = linear_c(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), name="warn")
    unused = replace(source, source=source.source + "\nstatic int unused;\n")
    with pytest.raises(ExportError, match="gcc refused"):
        compile_c(unused, workdir=tmp_path)


def test_tables_are_const_and_nothing_is_allocated_or_printed(forest: Any) -> None:
    ensemble = read_forest(forest[0])
    assert ensemble is not None
    text = ensemble_c(ensemble, name="forest", prepare=Prepare(fill=np.zeros(8))).source
    assert "malloc" not in text and "printf" not in text and "stdio" not in text
    assert all(
        line.startswith("static const")
        for line in text.splitlines()
        if line.startswith("static ") and "[" in line
    )


def test_names_become_c_identifiers() -> None:
    assert c_name("credit-risk v2") == "credit_risk_v2"
    assert c_name("3d") == "model_3d"


def test_odd_category_texts_and_labels_survive_as_c_strings_and_comments(tmp_path: Path) -> None:
    texts = ('say "hi"', "back\\slash", "ends */ comments", "café", "tab\there", "\x01" + "7")
    ensemble = replace(boosted(rounds=1), categories={0: texts}, classes=texts[:3])
    compiled = compile_c(ensemble_c(ensemble, name="odd"), workdir=tmp_path)
    assert [compiled.category_code(0, text) for text in texts] == list(range(len(texts)))
    assert np.isnan(compiled.category_code(0, "cafe"))


def test_a_new_model_compiled_in_the_same_folder_answers_itself(tmp_path: Path) -> None:
    one = compile_c(
        linear_c(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), name="same"), workdir=tmp_path
    )
    two = compile_c(
        linear_c(LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0]), name="same"), workdir=tmp_path
    )
    np.testing.assert_allclose([one.predict([[1.0]])[0, 0], two.predict([[1.0]])[0, 0]], [1.0, 2.0])


def booster_frame(task: str) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    """Numeric columns with missing values, and two pandas categoricals (text and numbers)."""
    rng = np.random.default_rng(0)
    numeric = rng.normal(size=(300, 3))
    numeric[rng.random(numeric.shape) < 0.1] = np.nan
    frame = pd.DataFrame(numeric, columns=["a", "b", "c"])
    colour = rng.integers(0, 4, 300)
    frame["colour"] = pd.Categorical.from_codes(colour, categories=["red", "green", "blue", "grey"])
    frame["size"] = pd.Categorical.from_codes(rng.integers(0, 3, 300), categories=[10, 20, 30])
    signal = np.nan_to_num(numeric[:, 0]) + np.array([1.5, -1.0, 0.5, -2.0])[colour]
    return frame, (np.digitize(signal, [-0.3, 0.8]) if task == "multiclass" else (signal > 0.3).astype(int))


@pytest.mark.parametrize("task", ["binary", "multiclass"])
@pytest.mark.parametrize("framework", ["xgboost", "lightgbm"])
def test_boosters_with_category_texts_answer_as_the_framework(
    framework: str, task: str, tmp_path: Path
) -> None:
    import lightgbm
    import xgboost

    frame, y = booster_frame(task)
    if framework == "xgboost":
        model = xgboost.XGBClassifier(n_estimators=15, max_depth=4, n_jobs=1, enable_categorical=True)
    else:
        model = lightgbm.LGBMClassifier(
            n_estimators=15, num_leaves=8, min_child_samples=5, verbose=-1, n_jobs=1
        )
    model.fit(frame, y)
    ensemble = read_booster(model)
    assert ensemble is not None and ensemble.categories
    missing = frame.head(20).copy()
    missing.loc[:, ["a", "colour", "size"]] = np.nan  # the categoricals keep their dtype
    rows = pd.concat([frame, missing], ignore_index=True)
    for column, points in ensemble.split_points().items():
        at = frame.head(len(points)).copy()
        at[frame.columns[column]] = points
        rows = pd.concat([rows, at], ignore_index=True)
    compiled = compile_c(ensemble_c(ensemble, name=framework), workdir=tmp_path)
    predictions = c_predictor(compiled)(Batch.from_pandas(rows))
    assert predictions.probabilities is not None
    tolerance = 1e-6 if framework == "xgboost" else 1e-12  # XGBoost sums its leaves in float32
    np.testing.assert_allclose(predictions.probabilities, model.predict_proba(rows), atol=tolerance)
    assert list(predictions.values) == list(model.predict(rows))
    x = compiled.matrix(Batch.from_pandas(rows))
    np.testing.assert_allclose(compiled.predict(x), ensemble.answers(x), **EXACT)


def test_an_unknown_dtype_is_refused_naming_the_ones_there_are() -> None:
    with pytest.raises(
        ExportError, match=r"dtype 'float16' has no C type; expected one of \['float32', 'float64'\]"
    ):
        ensemble_c(boosted(rounds=1), name="half", dtype="float16")  # type: ignore[arg-type]


PROGRAM = r"""#include <stdio.h>
#include "boosted.h"

int main(void)
{
    double row[BOOSTED_N_FEATURES], out[BOOSTED_N_OUTPUTS];
    int i;
    while (scanf("%lf", &row[1]) == 1) {
        row[0] = boosted_category_code(0, "c7");
        for (i = 2; i < BOOSTED_N_FEATURES; ++i) row[i] = row[1];
        boosted_predict(row, out);
        for (i = 0; i < BOOSTED_N_OUTPUTS; ++i) printf("%.17g ", out[i]);
        printf("%s\n", boosted_classes[boosted_predict_label(row)]);
    }
    return 0;
}
"""


def test_a_program_built_as_usage_says_answers_as_the_ensemble(tmp_path: Path) -> None:
    ensemble = boosted()
    source = ensemble_c(ensemble, name="boosted")
    for name, text in {"boosted.h": source.header, "boosted.c": source.source, "main.c": PROGRAM}.items():
        (tmp_path / name).write_text(text)
    subprocess.run(["gcc", *CFLAGS, "-o", "main", "main.c", "boosted.c", "-lm"], cwd=tmp_path, check=True)
    values = np.array([-1.0, 0.0, 0.3, 2.5])
    done = subprocess.run(
        [str(tmp_path / "main")],
        input="\n".join(map(str, values)),
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line.split() for line in done.stdout.splitlines()]
    x = np.column_stack([np.full(len(values), 7.0), *[values] * 4])
    np.testing.assert_allclose(
        [[float(v) for v in line[:-1]] for line in lines], ensemble.answers(x), **EXACT
    )
    assert [line[-1] for line in lines] == [f"k{i}" for i in ensemble.answers(x).argmax(axis=1)]


def test_an_xgboost_regressor_sums_in_float32_as_xgboost_to_the_bit(tmp_path: Path) -> None:
    import xgboost

    x, y = make_regression(400, 6, noise=1.0, random_state=0)
    x[::7, 2] = np.nan
    model = xgboost.XGBRegressor(n_estimators=20, max_depth=4, n_jobs=1).fit(x, y / 5 + 10)
    ensemble = read_booster(model)
    assert ensemble is not None and ensemble.float32_sums
    compiled = compile_c(ensemble_c(ensemble, name="xgb"), workdir=tmp_path)
    np.testing.assert_array_equal(compiled.predict(x)[:, 0], model.predict(x).astype(np.float64))
    np.testing.assert_array_equal(compiled.predict(x)[:, 0], ensemble.answers(x))
    compiled32 = compile_c(ensemble_c(ensemble, name="xgb", dtype="float32"), workdir=tmp_path / "32")
    np.testing.assert_array_equal(compiled32.predict(x)[:, 0], ensemble.answers(x))
