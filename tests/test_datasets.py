"""`shipyard.datasets`: the synthetic credit data and the demo's model, made on the spot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

import shipyard
from shipyard.datasets import (
    COUNTRIES,
    CREDIT_CATEGORICAL,
    CREDIT_NUMERIC,
    CREDIT_TARGET,
    EMPLOYMENT,
    credit_pipeline,
    fit_credit_model,
    make_credit,
)


def test_the_same_rows_and_seed_give_the_same_frame_and_another_seed_does_not() -> None:
    pd.testing.assert_frame_equal(make_credit(300, seed=4), make_credit(300, seed=4))
    assert not make_credit(300, seed=4).equals(make_credit(300, seed=5))
    pd.testing.assert_frame_equal(make_credit(50), make_credit(50, seed=0))


def test_the_frame_has_the_documented_columns_dtypes_and_values() -> None:
    frame = make_credit(2000, seed=1)
    assert frame.shape == (2000, 7)
    assert list(frame.columns) == [*CREDIT_NUMERIC, *CREDIT_CATEGORICAL, CREDIT_TARGET]
    assert {c: str(t) for c, t in frame.dtypes.items() if c not in CREDIT_CATEGORICAL} == {
        "age": "int64",
        "income": "float64",
        "debt_ratio": "float64",
        "months_employed": "int64",
        "default": "int64",
    }
    for column in CREDIT_CATEGORICAL:
        assert pd.api.types.is_string_dtype(frame[column]), column
    assert set(frame["country"]) == set(COUNTRIES)
    assert set(frame["employment"]) == set(EMPLOYMENT)
    assert set(frame[CREDIT_TARGET]) == {0, 1}
    assert frame["age"].between(18, 79).all()
    assert frame["debt_ratio"].between(0, 1).all()
    assert 0.01 < frame["income"].isna().mean() < 0.06  # about 3% of incomes are missing
    assert frame[[c for c in frame.columns if c != "income"]].notna().all().all()


def test_zero_rows_give_an_empty_frame_with_the_columns_and_negative_rows_are_refused() -> None:
    empty = make_credit(0)
    assert empty.shape == (0, 7)
    with pytest.raises(ValueError, match="n_rows must be 0 or more, got -1"):
        make_credit(-1)


def test_the_model_fits_and_predicts_better_than_chance_on_rows_it_never_saw() -> None:
    from sklearn.metrics import roc_auc_score

    model = fit_credit_model(make_credit(1500, seed=1))
    holdout = make_credit(800, seed=7)
    features = holdout.drop(columns=[CREDIT_TARGET])
    assert set(model.predict(features)) <= {0, 1}
    probabilities = model.predict_proba(features)
    assert probabilities.shape == (800, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert roc_auc_score(holdout[CREDIT_TARGET], probabilities[:, 1]) > 0.6


def test_the_same_frame_fits_the_same_model() -> None:
    train, rows = make_credit(500, seed=2), make_credit(50, seed=3).drop(columns=[CREDIT_TARGET])
    np.testing.assert_array_equal(
        fit_credit_model(train).predict_proba(rows), fit_credit_model(train).predict_proba(rows)
    )


def test_the_pipeline_comes_unfitted_and_takes_sample_weights_through_its_boost_step() -> None:
    pipeline = credit_pipeline()
    assert [name for name, _ in pipeline.steps] == ["encode", "boost"]
    with pytest.raises(NotFittedError):
        check_is_fitted(pipeline)
    train = make_credit(300, seed=6)
    weights = np.where(train["country"] == "ES", 2.0, 1.0)
    pipeline.fit(train.drop(columns=[CREDIT_TARGET]), train[CREDIT_TARGET], boost__sample_weight=weights)
    check_is_fitted(pipeline)


def test_a_frame_without_the_label_is_refused_with_its_columns() -> None:
    with pytest.raises(ValueError, match=r"no label column 'default'; columns: \['age'"):
        fit_credit_model(make_credit(20).drop(columns=[CREDIT_TARGET]))


def test_the_module_is_public_as_shipyard_datasets() -> None:
    assert shipyard.datasets.make_credit is make_credit
    assert "datasets" in shipyard.__all__
