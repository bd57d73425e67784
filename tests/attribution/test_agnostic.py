"""Model-agnostic Shapley values of registered-style predictors against a brute force over every
coalition, with string features mixed in; the sampling estimator against the exact values."""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler
from sklearn.svm import SVC

from shipyard.attribution.agnostic import AgnosticExplainer, agnostic_method
from shipyard.attribution.perceptron import mlp_oracle
from shipyard.core.batch import Batch
from shipyard.errors import InputError, UnsupportedExplanationError
from shipyard.flavors.sklearn import SklearnPredictor


def mixed_frame(n_numeric: int, n_rows: int = 160, seed: int = 0) -> pd.DataFrame:
    """Numeric features x0.., then two string features, colour and size."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n_rows) for i in range(n_numeric)})
    frame["colour"] = rng.choice(["red", "green", "blue"], n_rows).astype(object)
    frame["size"] = rng.choice(["S", "M", "L"], n_rows).astype(object)
    return frame


def fitted(estimator: Any, frame: pd.DataFrame, target: Any) -> Pipeline:
    """`estimator` behind scaling of the numbers and one-hot encoding of the strings."""
    numeric = [c for c in frame.columns if c.startswith("x")]
    front = ColumnTransformer(
        [
            ("num", StandardScaler(), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["colour", "size"]),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make_pipeline(front, estimator).fit(frame, target)


def classifier(n_numeric: int) -> tuple[SklearnPredictor, pd.DataFrame]:
    frame = mixed_frame(n_numeric)
    label = ((frame["x0"] * frame["x1"] + (frame["colour"] == "red") - frame["x2"]) > 0).astype(int)
    model = fitted(MLPClassifier(hidden_layer_sizes=(16,), random_state=0, max_iter=300), frame, label)
    meta = {"frame_input": True, "task": "classification", "classes": [0, 1]}
    return SklearnPredictor(model, meta), frame


def regressor(estimator: Any) -> tuple[SklearnPredictor, pd.DataFrame]:
    frame = mixed_frame(3)
    value = np.sin(frame["x0"]) * 2 + frame["x1"] ** 2 + (frame["size"] == "L") * frame["x2"]
    return SklearnPredictor(
        fitted(estimator, frame, value), {"frame_input": True, "task": "regression"}
    ), frame


def brute_force(
    predictor: SklearnPredictor, row: dict[str, Any], background: pd.DataFrame, outputs: int
) -> np.ndarray:
    """The Shapley formula over every coalition, each coalition's rows built record by record."""
    names = list(background.columns)
    d = len(names)
    records = [
        {n: (row[n] if mask >> i & 1 else record[n]) for i, n in enumerate(names)}
        for mask in range(1 << d)
        for record in background.to_dict("records")
    ]
    predictions = predictor.predict(Batch.from_records(records))
    table = predictions.values if predictions.probabilities is None else predictions.probabilities
    value = np.asarray(table, dtype=np.float64).reshape(1 << d, len(background), outputs).mean(axis=1)
    phi = np.zeros((d, outputs))
    for i in range(d):
        for mask in range(1 << d):
            if not mask >> i & 1:
                s = bin(mask).count("1")
                phi[i] += (value[mask | 1 << i] - value[mask]) / (d * math.comb(d - 1, s))
    return phi


def explainer(predictor: SklearnPredictor, frame: pd.DataFrame, **options: Any) -> AgnosticExplainer:
    classes = None if predictor.classes is None else predictor.classes
    return AgnosticExplainer(
        predictor,
        names=tuple(frame.columns),
        classes=classes,
        background=Batch.from_pandas(frame.iloc[:12]),
        **options,
    )


@pytest.mark.parametrize("fused", [True, False], ids=lambda f: "fused" if f else "generic")
def test_exact_values_of_an_mlp_with_strings_equal_the_brute_force(fused: bool) -> None:
    predictor, frame = classifier(4)
    rows = frame.iloc[100:103]
    got = explainer(predictor, frame, fused=fused).explain(Batch.from_pandas(rows))
    assert got.exact and got.method == "exact" and got.space == "probability"
    assert got.outputs == ("0", "1") and got.error is None
    assert got.values.shape == (3, 6, 2) and got.additivity.max() <= 1e-9
    for r, row in enumerate(rows.to_dict("records")):
        expected = brute_force(predictor, row, frame.iloc[:12], 2)
        np.testing.assert_allclose(got.values[r], expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.output, predictor.predict(Batch.from_pandas(rows)).probabilities, atol=0)


@pytest.mark.parametrize(
    "estimator",
    [
        KNeighborsRegressor(n_neighbors=4),
        MLPRegressor(hidden_layer_sizes=(12,), random_state=0, max_iter=200),
    ],
    ids=lambda e: type(e).__name__,
)
def test_exact_values_of_a_regressor_with_strings_equal_the_brute_force(estimator: Any) -> None:
    predictor, frame = regressor(estimator)
    rows = frame.iloc[120:122]
    got = explainer(predictor, frame).explain(Batch.from_pandas(rows))
    assert got.space == "raw" and got.outputs == ("value",) and got.values.shape == (2, 5, 1)
    for r, row in enumerate(rows.to_dict("records")):
        np.testing.assert_allclose(
            got.values[r], brute_force(predictor, row, frame.iloc[:12], 1), rtol=0, atol=1e-9
        )
    assert got.additivity.max() <= 1e-9
    np.testing.assert_allclose(got.base, np.broadcast_to(got.base[0], got.base.shape), rtol=0, atol=1e-12)


def columns_of(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    batch = Batch.from_pandas(frame)
    return {n: batch.columns[n] for n in frame.columns}


def test_the_fused_pass_is_used_only_on_mlps_behind_column_wise_steps() -> None:
    predictor, frame = classifier(4)
    background = columns_of(frame.iloc[:12])
    fused = mlp_oracle(predictor, tuple(frame.columns), (0, 1), background, fallback=lambda r, c: c)
    assert fused is not None
    assert list(fused.owners) == [0, 1, 2, 3, 4, 4, 4, 5, 5, 5]  # x0..x3, then each one-hot block
    knn, knn_frame = regressor(KNeighborsRegressor(n_neighbors=4))
    assert (
        mlp_oracle(
            knn, tuple(knn_frame.columns), None, columns_of(knn_frame.iloc[:12]), fallback=lambda r, c: c
        )
        is None
    )
    # Products of features are not column-wise: the split does not hold, the model is predicted.
    numeric = frame[["x0", "x1", "x2"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mixed = make_pipeline(
            PolynomialFeatures(2), MLPRegressor(hidden_layer_sizes=(8,), random_state=0, max_iter=50)
        )
        mixed.fit(numeric, numeric["x0"])
    poly = SklearnPredictor(mixed, {"frame_input": True, "task": "regression"})
    assert (
        mlp_oracle(poly, ("x0", "x1", "x2"), None, columns_of(numeric.iloc[:12]), fallback=lambda r, c: c)
        is None
    )
    got = explainer(poly, numeric).explain(Batch.from_pandas(numeric.iloc[100:101]))
    expected = brute_force(poly, numeric.iloc[100].to_dict(), numeric.iloc[:12], 1)
    np.testing.assert_allclose(got.values[0], expected, rtol=0, atol=1e-9)


def test_a_bare_multiclass_mlp_fused_equals_predicting_the_mixed_rows() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(150, 7))
    label = np.digitize(x[:, 0] + x[:, 1] * x[:, 2], [-0.5, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier(
            hidden_layer_sizes=(10, 6), activation="tanh", random_state=0, max_iter=100
        ).fit(x, label)
    predictor = SklearnPredictor(model, {"task": "classification", "classes": [0, 1, 2]})
    names = tuple(f"f{i}" for i in range(7))
    batch = Batch({n: x[100:105, i] for i, n in enumerate(names)}, 5)
    background = Batch({n: x[:20, i] for i, n in enumerate(names)}, 20)
    for method in ("exact", "permutation"):
        results = [
            AgnosticExplainer(
                predictor, names=names, classes=(0, 1, 2), background=background, method=method, fused=f
            ).explain(batch)
            for f in (True, False)
        ]
        assert results[0].outputs == ("0", "1", "2")
        np.testing.assert_allclose(results[0].values, results[1].values, rtol=0, atol=1e-12)
        assert results[0].additivity.max() <= 1e-9


def test_small_chunks_give_the_same_exact_values() -> None:
    predictor, frame = classifier(3)
    batch = Batch.from_pandas(frame.iloc[50:54])
    whole = explainer(predictor, frame, fused=False).explain(batch)
    chunked = explainer(predictor, frame, fused=False, chunk_rows=50).explain(batch)
    np.testing.assert_allclose(whole.values, chunked.values, rtol=0, atol=1e-12)


def test_thirteen_features_exact_is_refused_naming_permutation() -> None:
    frame = pd.DataFrame({f"x{i}": np.zeros(3) for i in range(13)})
    with pytest.raises(
        UnsupportedExplanationError, match=r"at most 12 features; this model has 13.*'permutation'"
    ):
        AgnosticExplainer(None, names=tuple(frame.columns), classes=None, background=Batch.from_pandas(frame))  # type: ignore[arg-type]


def test_five_hundred_features_exact_is_refused_quickly() -> None:
    names = tuple(f"x{i}" for i in range(500))
    background = Batch({n: np.zeros(50) for n in names}, 50)
    start = time.perf_counter()
    with pytest.raises(UnsupportedExplanationError, match="method='permutation'"):
        AgnosticExplainer(None, names=names, classes=None, background=background)  # type: ignore[arg-type]
    assert time.perf_counter() - start < 0.05


@pytest.mark.parametrize(
    ("d", "method"), [(1, "exact"), (12, "exact"), (13, "permutation"), (500, "permutation")]
)
def test_auto_picks_exact_up_to_twelve_features(d: int, method: str) -> None:
    assert agnostic_method(d) == method


def test_a_bad_background_or_method_is_refused_by_name() -> None:
    background = Batch({"a": np.zeros(2)}, 2)
    with pytest.raises(InputError, match="no feature 'b'"):
        AgnosticExplainer(None, names=("a", "b"), classes=None, background=background)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedExplanationError, match="no method 'kernel'.*'exact', 'permutation'"):
        AgnosticExplainer(None, names=("a",), classes=None, background=background, method="kernel")  # type: ignore[arg-type]


def test_permutation_estimates_are_close_to_exact_with_their_error_and_add_up() -> None:
    predictor, frame = classifier(6)  # 8 features
    batch = Batch.from_pandas(frame.iloc[100:104])
    exact = explainer(predictor, frame).explain(batch)
    sampled = explainer(predictor, frame, method="permutation").explain(batch)
    assert not sampled.exact and sampled.method == "permutation" and sampled.error is not None
    assert (sampled.error > 0).all() and sampled.error.max() < 0.05
    assert sampled.additivity.max() <= 1e-9
    # Within 4 stated standard errors on every feature (the error is the largest over features).
    gap = np.abs(sampled.values - exact.values).max(axis=(1, 2))
    assert (gap <= 4 * sampled.error + 1e-12).all(), (gap, sampled.error)


def test_permutation_estimates_are_byte_identical_per_seed_and_differ_between_seeds() -> None:
    predictor, frame = classifier(6)
    batch = Batch.from_pandas(frame.iloc[100:103])
    first = explainer(predictor, frame, method="permutation", permutations=6).explain(batch)
    again = explainer(predictor, frame, method="permutation", permutations=6).explain(batch)
    other = explainer(predictor, frame, method="permutation", permutations=6, seed=1).explain(batch)
    assert first.values.tobytes() == again.values.tobytes()
    assert first.error is not None and again.error is not None
    assert first.error.tobytes() == again.error.tobytes()
    assert first.values.tobytes() != other.values.tobytes()
    # A row's estimate does not depend on the rows explained with it.
    alone = explainer(predictor, frame, method="permutation", permutations=6).explain(batch.take([1]))
    np.testing.assert_allclose(alone.values[0], first.values[1], rtol=0, atol=1e-12)


def test_permutation_refuses_an_odd_budget() -> None:
    predictor, frame = classifier(3)
    with pytest.raises(
        InputError, match="even number of at least 4 permutations to estimate its error; got 3"
    ):
        explainer(predictor, frame, method="permutation", permutations=3).explain(
            Batch.from_pandas(frame.iloc[:1])
        )


def test_a_classifier_without_probabilities_is_refused_naming_predict_proba() -> None:
    frame = mixed_frame(2)
    model = fitted(SVC(), frame, (frame["x0"] > 0).astype(int))
    predictor = SklearnPredictor(model, {"frame_input": True, "task": "classification", "classes": [0, 1]})
    with pytest.raises(
        UnsupportedExplanationError,
        match=r"no probabilities.*predict_proba.*CalibratedClassifierCV\(SVC\(\), ensemble=False\)",
    ):
        explainer(predictor, frame).explain(Batch.from_pandas(frame.iloc[:2]))


def test_no_rows_give_an_empty_explanation() -> None:
    predictor, frame = classifier(3)
    got = explainer(predictor, frame).explain(Batch.from_pandas(frame.iloc[:0]))
    assert got.values.shape == (0, 5, 2) and got.n_rows == 0
