"""Synthetic data and a model to try Shipyard on, made on the spot: no download, no files.

Like `sklearn.datasets`, for the credit applications that `shipyard demo`, the README, the guides
and the tests use::

    from shipyard.datasets import fit_credit_model, make_credit

    train = make_credit(5000)                  # the same rows for the same n_rows and seed
    model = fit_credit_model(train)            # gradient boosting that encodes the categories itself
    shipyard.register(model, name="credit", train_data=train, target=CREDIT_TARGET)

The rows have four numeric features (`age`, `income` with about 3% missing, `debt_ratio`,
`months_employed`), two categorical ones (`country`, `employment`) and the 0/1 label `default`,
drawn from a logistic model of them, so a model learns something and a shifted copy drifts.
This module needs only NumPy, pandas and scikit-learn, and imports nothing else of Shipyard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

__all__ = [
    "COUNTRIES",
    "CREDIT_CATEGORICAL",
    "CREDIT_NUMERIC",
    "CREDIT_TARGET",
    "EMPLOYMENT",
    "credit_pipeline",
    "fit_credit_model",
    "make_credit",
]

COUNTRIES = ("DE", "FR", "ES", "IT", "NL")
"""The categories of `country`."""
EMPLOYMENT = ("salaried", "self-employed", "unemployed", "retired")
"""The categories of `employment`."""
CREDIT_NUMERIC = ("age", "income", "debt_ratio", "months_employed")
"""The numeric features of the credit data, in column order."""
CREDIT_CATEGORICAL = ("country", "employment")
"""The categorical features of the credit data, in column order."""
CREDIT_TARGET = "default"
"""The label column of the credit data: 1 when the applicant defaulted."""


def make_credit(n_rows: int = 5000, *, seed: int = 0) -> pd.DataFrame:
    """Synthetic credit applications with numeric and categorical features and a 0/1 label.

    Args:
        n_rows: How many applications (rows) to make.
        seed: The random seed; the same `n_rows` and `seed` give the same rows on every machine.

    Returns:
        A frame with the columns `age` (int64), `income` (float64, about 3% NaN), `debt_ratio`
        (float64 in [0, 1]), `months_employed` (int64), `country` and `employment` (strings from
        `COUNTRIES` and `EMPLOYMENT`) and `default` (int64, 0 or 1).

    Raises:
        ValueError: `n_rows` is negative.
    """
    import pandas as pd

    if n_rows < 0:
        raise ValueError(f"n_rows must be 0 or more, got {n_rows}")
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n_rows)
    income = np.round(rng.lognormal(8.2, 0.5, n_rows), 2)
    income[rng.random(n_rows) < 0.03] = np.nan
    debt_ratio = np.round(rng.beta(2, 5, n_rows), 3)
    months_employed = rng.integers(0, 480, n_rows)
    country = rng.choice(COUNTRIES, n_rows)
    employment = rng.choice(EMPLOYMENT, n_rows, p=[0.6, 0.2, 0.1, 0.1])
    logit = (
        -1.0
        + 3.5 * debt_ratio
        - 0.00025 * np.nan_to_num(income, nan=3000.0)
        - 0.004 * months_employed
        + 1.2 * (employment == "unemployed")
        + 0.3 * (country == "ES")
        + 0.01 * (age < 25) * 30
    )
    default = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "debt_ratio": debt_ratio,
            "months_employed": months_employed,
            "country": country,
            "employment": employment,
            CREDIT_TARGET: default,
        }
    )


def credit_pipeline() -> Pipeline:
    """The demo's credit model, not fitted: categories ordinal-encoded, then gradient boosting.

    Its steps are `encode` and `boost`, so fit parameters reach the booster as `boost__NAME`
    (`boost__sample_weight=weights`, say). Unknown categories at prediction time become missing.

    Returns:
        An unfitted scikit-learn `Pipeline` over the columns of `make_credit` less the label.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encode = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan),
                list(CREDIT_CATEGORICAL),
            ),
            ("numbers", "passthrough", list(CREDIT_NUMERIC)),
        ]
    )
    boost = HistGradientBoostingClassifier(max_iter=100, categorical_features=[0, 1], random_state=0)
    return Pipeline([("encode", encode), ("boost", boost)])


def fit_credit_model(frame: pd.DataFrame) -> Pipeline:
    """`credit_pipeline()` fitted on `frame`; the same frame gives the same model.

    Args:
        frame: Credit rows with the label column `default`, as `make_credit` makes them.

    Returns:
        The fitted pipeline; it predicts 0/1 and `predict_proba` gives two columns.

    Raises:
        ValueError: `frame` has no `default` column.
    """
    if CREDIT_TARGET not in frame.columns:
        raise ValueError(
            f"the credit frame has no label column {CREDIT_TARGET!r}; columns: {list(frame.columns)}"
        )
    return credit_pipeline().fit(frame.drop(columns=[CREDIT_TARGET]), frame[CREDIT_TARGET])
