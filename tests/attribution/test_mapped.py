"""Explanations through a pipeline: one value per raw contract feature, equal to interventional
Shapley values over the raw features computed by brute force through the whole pipeline."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from shipyard.attribution.linear import linear_explainer
from shipyard.attribution.mapped import Mapped
from shipyard.attribution.pipelines import Front, front_of
from shipyard.core.batch import Batch
from shipyard.errors import ExplanationError

NAMES = ("colour", "size", "city", "age")


def frame(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], n).astype(object)
    colour[:2] = "purple"
    return pd.DataFrame(
        {
            "colour": colour,
            "size": rng.normal(size=n),
            "city": rng.choice(["a", "b"], n).astype(object),
            "age": rng.uniform(0, 80, n),
        }
    )


def labels(df: pd.DataFrame, n_classes: int) -> np.ndarray:
    score = df["size"].to_numpy() + (df["colour"] == "red") - (df["city"] == "a") + df["age"].to_numpy() / 40
    return np.array(["low", "mid", "high"])[
        np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))
    ]


def acceptance_model() -> Pipeline:
    return Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [("cat", OneHotEncoder(), ["colour", "city"]), ("num", StandardScaler(), ["size", "age"])]
                ),
            ),
            ("model", LogisticRegression()),
        ]
    )


def explainer(model: Any, background: pd.DataFrame) -> tuple[Mapped, Front]:
    frame_input = getattr(model, "feature_names_in_", None) is not None  # as the sklearn flavor saves it
    front = front_of(model, names=NAMES, frame_input=frame_input)
    assert front is not None
    engine = linear_explainer(
        front.estimator, background=front.transform(Batch.from_pandas(background)), classes=None
    )
    assert engine is not None
    return Mapped(front, engine, names=NAMES), front


def brute_force(model: Any, row: pd.DataFrame, background: pd.DataFrame, margin: str) -> np.ndarray:
    """Interventional Shapley values of one row over the RAW features: each coalition's raw
    columns from the row, the rest from the background, the whole pipeline run on the mix."""
    d = len(NAMES)

    def value(coalition: tuple[int, ...]) -> np.ndarray:
        mixed = background.copy()
        for j in coalition:
            mixed[NAMES[j]] = row[NAMES[j]].iloc[0]
        out = np.asarray(getattr(model, margin)(mixed), dtype=np.float64)
        return out.reshape(len(background), -1).mean(axis=0)

    values = {c: value(c) for size in range(d + 1) for c in itertools.combinations(range(d), size)}
    phi = np.zeros((d, values[()].shape[0]))
    for i in range(d):
        for coalition, v in values.items():
            if i in coalition:
                continue
            joined = tuple(sorted((*coalition, i)))
            phi[i] += (values[joined] - v) / (d * math.comb(d - 1, len(coalition)))
    return phi


def test_acceptance_one_attribution_per_raw_column() -> None:
    df = frame()
    model = acceptance_model().fit(df, labels(df, 2))
    mapped, _ = explainer(model, df.iloc[:20])
    rows = Batch.from_pandas(df.iloc[40:60])
    answer = mapped.explain(rows)
    assert answer.features == NAMES
    assert answer.values.shape == (20, 4, 1)
    assert (answer.method, answer.space, answer.outputs, answer.exact) == (
        "linear",
        "log_odds",
        ("mid",),
        True,
    )
    assert answer.additivity.max() <= 1e-10  # ~1e-15 measured
    np.testing.assert_allclose(answer.output[:, 0], model.decision_function(df.iloc[40:60]), atol=0)
    assert answer.mapping["colour"] == (
        "cat__colour_blue",
        "cat__colour_green",
        "cat__colour_purple",
        "cat__colour_red",
    )
    assert answer.mapping["city"] == ("cat__city_a", "cat__city_b")
    assert answer.mapping["age"] == ("num__age",)
    for r in (0, 7):
        expected = brute_force(model, df.iloc[[40 + r]], df.iloc[:20], "decision_function")
        np.testing.assert_allclose(answer.values[r], expected, rtol=0, atol=1e-9)


def imputed_regressor() -> Pipeline:
    colour = make_pipeline(
        SimpleImputer(strategy="most_frequent"),
        OneHotEncoder(
            drop="first", min_frequency=5, handle_unknown="infrequent_if_exist", sparse_output=True
        ),
    )
    return make_pipeline(
        ColumnTransformer(
            [
                ("colour", colour, ["colour"]),
                ("size", SimpleImputer(add_indicator=True), ["size"]),
                ("city", OneHotEncoder(drop="if_binary"), ["city"]),
            ],
            remainder=StandardScaler(),
        ),
        StandardScaler(with_mean=False),
        Ridge(alpha=0.3),
    )


CASES = {
    "binary_logistic": (acceptance_model, 2, "decision_function"),
    "multinomial_logistic": (acceptance_model, 3, "decision_function"),
    "regressor_imputed_infrequent_sparse": (imputed_regressor, 0, "predict"),
}


@pytest.mark.parametrize("case", sorted(CASES), ids=str)
def test_pipeline_linear_equals_raw_brute_force(case: str) -> None:
    build, n_classes, margin = CASES[case]
    df = frame(seed=2)
    df.loc[[5, 9, 41], "size"] = np.nan
    df.loc[[6], "colour"] = np.nan
    if n_classes:
        df["size"] = df["size"].fillna(0.0)
        df["colour"] = df["colour"].fillna("blue")
        model = build().fit(df, labels(df, n_classes))
    else:
        model = build().fit(df, df["size"].fillna(1.0) * 2 + (df["colour"] == "red") + df["age"] / 10)
    background = df.iloc[:12]
    mapped, front = explainer(model, background)
    rows = df.iloc[[41, 50, 6, 63]]
    answer = mapped.explain(Batch.from_pandas(rows))
    assert answer.values.shape == (4, 4, 3 if n_classes == 3 else 1)
    assert answer.additivity.max() <= 1e-9
    for r in range(len(rows)):
        expected = brute_force(model, rows.iloc[[r]], background, margin)
        np.testing.assert_allclose(answer.values[r], expected, rtol=0, atol=1e-9)
    if n_classes == 3:
        assert answer.outputs == ("high", "low", "mid")
    if not n_classes:
        assert set(front.mapping(NAMES)["size"]) == {"size__size", "size__missingindicator_size"}


def test_a_dropped_feature_gets_nothing() -> None:
    df = frame()
    model = make_pipeline(
        ColumnTransformer([("cat", OneHotEncoder(), ["colour"]), ("num", "passthrough", ["age"])]),
        LinearRegression(),
    ).fit(df, df["age"] + (df["colour"] == "red"))
    mapped, front = explainer(model, df.iloc[:10])
    answer = mapped.explain(Batch.from_pandas(df.iloc[10:15]))
    assert front.mapping(NAMES)["size"] == () and front.mapping(NAMES)["city"] == ()
    assert not answer.values[:, [1, 2], :].any()
    assert answer.additivity.max() <= 1e-9


def test_numpy_input_and_no_rows() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4))
    model = make_pipeline(StandardScaler(), Ridge()).fit(x, x @ [1.0, -2.0, 0.5, 0.0])
    front = front_of(model, names=NAMES, frame_input=False)
    assert front is not None
    batch = Batch.from_columns({name: x[:, j] for j, name in enumerate(NAMES)})
    engine = linear_explainer(
        front.estimator, background=front.transform(batch.take(range(10))), classes=None
    )
    assert engine is not None
    mapped = Mapped(front, engine, names=NAMES)
    answer = mapped.explain(batch.take(range(10, 20)))
    np.testing.assert_allclose(answer.output[:, 0], model.predict(x[10:20]), atol=0)
    assert answer.additivity.max() <= 1e-9
    empty = mapped.explain(batch.take([]))
    assert empty.values.shape == (0, 4, 1) and empty.n_rows == 0


def test_a_front_pointing_outside_the_contract_is_refused() -> None:
    x = np.zeros((4, 2))
    model = LinearRegression().fit(x, np.arange(4.0))
    front = Front(model, ("a", "b"), (0, 5))
    engine = linear_explainer(model, background=x, classes=None)
    assert engine is not None
    with pytest.raises(ExplanationError, match="expected positions among the contract's 2 features"):
        Mapped(front, engine, names=("a", "b"))
