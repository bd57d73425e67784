"""The fused MLP oracle: the same coalition values as mixing rows and predicting, for bare MLPs
and column-wise pipelines; refused (None) where the split cannot hold; the fallback where the
rows break it."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, PolynomialFeatures, StandardScaler

from shipyard.attribution.model_output import ModelOutput
from shipyard.attribution.perceptron import FusedMLP, mlp_oracle
from shipyard.attribution.shapley import all_coalitions, coalition_values
from shipyard.flavors.sklearn import SklearnPredictor

NAMES = ("x0", "x1", "x2", "x3")


def columns(x: np.ndarray) -> dict[str, np.ndarray]:
    return {n: np.ascontiguousarray(x[:, j]) for j, n in enumerate(NAMES)}


def fit(model: Any, x: np.ndarray, y: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def setup(
    model: Any, classes: tuple[Any, ...] | None
) -> tuple[SklearnPredictor, Any, Any, dict[str, np.ndarray]]:
    """The predictor, the fused oracle, the mixing oracle and some rows to explain."""
    if classes is None:
        x, y = make_regression(60, 4, random_state=0)
        meta: dict[str, Any] = {"task": "regression"}
    else:
        x, y = make_classification(
            60, 4, n_informative=3, n_redundant=0, n_classes=len(classes), random_state=0
        )
        meta = {"task": "classification", "classes": list(classes)}
    predictor = SklearnPredictor(fit(model, x, y), meta)
    background = columns(x[:9])
    mixing = functools.partial(
        coalition_values, ModelOutput(predictor, NAMES, classes, "exact"), background, NAMES
    )
    fused = mlp_oracle(predictor, NAMES, classes, background, fallback=mixing)
    return predictor, fused, mixing, columns(x[20:25])


MODELS = [
    ("regressor-relu", lambda: MLPRegressor(hidden_layer_sizes=(8,), random_state=0, max_iter=50), None),
    (
        "regressor-tanh-two-layers",
        lambda: MLPRegressor(hidden_layer_sizes=(6, 5), activation="tanh", random_state=0, max_iter=50),
        None,
    ),
    (
        "regressor-logistic",
        lambda: MLPRegressor(hidden_layer_sizes=(5,), activation="logistic", random_state=0, max_iter=50),
        None,
    ),
    (
        "regressor-identity",
        lambda: MLPRegressor(hidden_layer_sizes=(5,), activation="identity", random_state=0, max_iter=50),
        None,
    ),
    ("binary", lambda: MLPClassifier(hidden_layer_sizes=(8,), random_state=0, max_iter=50), (0, 1)),
    ("three-classes", lambda: MLPClassifier(hidden_layer_sizes=(8,), random_state=0, max_iter=50), (0, 1, 2)),
    (
        "scaled-pipeline",
        lambda: make_pipeline(
            StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), random_state=0, max_iter=50)
        ),
        (0, 1, 2),
    ),
]


@pytest.mark.parametrize(("make", "classes"), [(m, c) for _, m, c in MODELS], ids=[i for i, _, _ in MODELS])
def test_the_fused_pass_gives_the_coalition_values_of_mixing_rows_and_predicting(
    make: Any, classes: Any
) -> None:
    _, fused, mixing, rows = setup(make(), classes)
    assert isinstance(fused, FusedMLP)
    every = all_coalitions(len(NAMES))  # all 2**d in order: the doubling table
    expected = mixing(rows, every)
    found = fused(rows, every)
    assert found.shape == expected.shape == (5, 16, 1 if classes is None else len(classes))
    np.testing.assert_allclose(found, expected, rtol=0, atol=1e-10)
    some = np.random.default_rng(1).random((7, len(NAMES))) < 0.5  # any coalitions, any order
    np.testing.assert_allclose(fused(rows, some), mixing(rows, some), rtol=0, atol=1e-10)


def test_models_the_split_does_not_hold_for_get_none() -> None:
    # not an MLP
    _, none, _, _ = setup(LinearRegression(), None)
    assert none is None
    # a front whose columns depend on two features is not column-wise
    poly = make_pipeline(
        PolynomialFeatures(2), MLPRegressor(hidden_layer_sizes=(4,), random_state=0, max_iter=20)
    )
    _, none, _, _ = setup(poly, None)
    assert none is None


def test_classes_other_than_the_mlps_own_get_none() -> None:
    x, y = make_classification(60, 4, n_informative=3, n_redundant=0, random_state=0)
    model = fit(MLPClassifier(hidden_layer_sizes=(4,), random_state=0, max_iter=20), x, y)
    predictor = SklearnPredictor(model, {"task": "classification", "classes": [0, 1]})
    background = columns(x[:5])

    def never(rows: Any, coalitions: Any) -> Any:
        raise AssertionError("not called")

    assert mlp_oracle(predictor, NAMES, (1, 0), background, fallback=never) is None
    assert mlp_oracle(predictor, NAMES, None, background, fallback=never) is None
    assert mlp_oracle(predictor, NAMES, (0, 1), background, fallback=never) is not None


def test_rows_that_break_the_split_are_answered_by_the_fallback() -> None:
    # column-wise on the background (x0 never exceeds 100), not on a row where it does
    def leaky(x: np.ndarray) -> np.ndarray:
        out = np.array(x, dtype=np.float64)
        out[:, 1] += (out[:, 0] > 100) * out[:, 2]
        return out

    model = make_pipeline(
        FunctionTransformer(leaky), MLPRegressor(hidden_layer_sizes=(6,), random_state=0, max_iter=50)
    )
    _, fused, mixing, rows = setup(model, None)
    assert isinstance(fused, FusedMLP)
    calls: list[int] = []

    def fallback(rows: Any, coalitions: Any) -> Any:
        calls.append(len(coalitions))
        return mixing(rows, coalitions)

    fused = FusedMLP(
        fused.mlp, fused.names, fused.transform, fused.owners, fused.raw, fused.background, fallback
    )
    every = all_coalitions(len(NAMES))
    np.testing.assert_allclose(fused(rows, every), mixing(rows, every), rtol=0, atol=1e-10)
    assert calls == []
    odd = {**rows, "x0": np.where(np.arange(5) == 0, 1000.0, rows["x0"])}
    np.testing.assert_allclose(fused(odd, every), mixing(odd, every), rtol=0, atol=1e-10)
    assert calls == [16]
