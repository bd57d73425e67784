"""A pipeline's ColumnTransformer fed from columns gives the DataFrame path's numbers, or steps aside."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from shipyard.core.batch import Batch
from shipyard.flavors.sklearn import SklearnPredictor
from shipyard.flavors.sklearn_columns import ColumnarPipeline

NUMBERS = ["age", "income", "debt_ratio", "months_employed"]
TEXT = ["country", "employment"]


def _fit(columns: ColumnTransformer, credit: pd.DataFrame, final: Any = None) -> Pipeline:
    model = Pipeline([("columns", columns), ("final", final or HistGradientBoostingClassifier(max_iter=10))])
    return model.fit(credit.drop(columns=["default"]), credit["default"])


def _predictor(model: Pipeline) -> SklearnPredictor:
    return SklearnPredictor(model, {"frame_input": True, "classes": [0, 1], "task": "classification"})


def _onehot_and_scaled() -> ColumnTransformer:
    text = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    return ColumnTransformer([("text", text, TEXT), ("num", StandardScaler(), NUMBERS)])


def test_the_columns_path_gives_the_dataframe_paths_exact_numbers(credit: pd.DataFrame) -> None:
    model = _fit(_onehot_and_scaled(), credit)
    predictor = _predictor(model)
    assert predictor._columnar is not None
    rows = credit.drop(columns=["default"]).head(50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no feature-name warning from the nameless copies
        ours = predictor.predict(Batch.from_pandas(rows))
    assert np.array_equal(ours.probabilities, model.predict_proba(rows))
    # the registered model keeps its names for everything else
    assert list(model.named_steps["columns"].transformers_[1][1].feature_names_in_) == NUMBERS


def test_positions_passthrough_and_remainder_are_read_as_the_transformer_reads_them(
    credit: pd.DataFrame,
) -> None:
    text = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    model = _fit(ColumnTransformer([("text", text, [4, 5])], remainder="passthrough"), credit)
    predictor = _predictor(model)
    assert predictor._columnar is not None
    rows = credit.drop(columns=["default"]).head(20)
    assert np.array_equal(predictor.predict(Batch.from_pandas(rows)).probabilities, model.predict_proba(rows))


@pytest.mark.parametrize(
    "columns",
    [
        ColumnTransformer([("f", FunctionTransformer(np.log1p), ["income"])], remainder="drop"),
        ColumnTransformer([("inner", ColumnTransformer([("s", StandardScaler(), ["age"])]), ["age"])]),
        ColumnTransformer([("one", CountVectorizer(), "country")]),
        ColumnTransformer([("mask", StandardScaler(), slice(0, 2))]),
    ],
    ids=["code", "nested", "one-column-1d", "slice"],
)
def test_what_may_read_names_or_run_code_keeps_the_dataframe_path(
    columns: ColumnTransformer, credit: pd.DataFrame
) -> None:
    final = LogisticRegression() if isinstance(columns.transformers[0][1], CountVectorizer) else None
    assert ColumnarPipeline.of(_fit(columns, credit, final)) is None


def test_a_pipeline_set_to_output_dataframes_keeps_the_dataframe_path(credit: pd.DataFrame) -> None:
    model = _fit(_onehot_and_scaled(), credit).set_output(transform="pandas")
    model = model.fit(credit.drop(columns=["default"]), credit["default"])
    assert ColumnarPipeline.of(model) is None


def test_a_missing_text_value_takes_the_dataframe_path_for_that_call(credit: pd.DataFrame) -> None:
    model = _fit(_onehot_and_scaled(), credit)
    columnar = ColumnarPipeline.of(model)
    assert columnar is not None
    rows = Batch.from_pandas(credit.drop(columns=["default"]).head(3))
    text = rows.columns["country"].copy()
    text[1] = None
    assert columnar.transform(Batch({**rows.columns, "country": text}, 3)) is None
    assert columnar.transform(rows) is not None


def test_outputs_that_differ_on_the_first_call_turn_the_columns_path_off(
    credit: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    model = _fit(_onehot_and_scaled(), credit)
    columnar = ColumnarPipeline.of(model)
    assert columnar is not None
    other = StandardScaler().fit(credit[NUMBERS].to_numpy() * 2.0)  # not the fitted scaler
    columnar._groups[1] = (other, columnar._groups[1][1])
    rows = Batch.from_pandas(credit.drop(columns=["default"]).head(5))
    with caplog.at_level(logging.WARNING, logger="shipyard.flavors.sklearn_columns"):
        assert columnar.transform(rows) is None
    assert "fed DataFrames from now on" in caplog.text
    assert columnar.transform(rows) is None
    predictor = _predictor(model)
    predictor._columnar = columnar
    assert np.array_equal(predictor.predict(rows).probabilities, model.predict_proba(rows.to_pandas()))
