"""Every flavor runs the same checks: round trip, equal predictions, contract, 0, 1 and 100k rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard import ContractViolationError, Registry
from shipyard.security.signing import SigningKey


@dataclass
class Case:
    model: Any
    frame: pd.DataFrame
    target: str
    expected: Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray | None]]
    flavor: str
    tolerance: float = 1e-9
    trust_pickle: bool = False


class MeanModel:
    """A custom pyfunc model: predicts the mean of two columns."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return (frame["a"].to_numpy() + frame["b"].to_numpy()) / 2


def _classifier(model: Any) -> Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray | None]]:
    def expected(x: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        return model.predict(x), model.predict_proba(x)

    return expected


def _cancer() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X.iloc[:, :8], y


def sklearn_case(credit: pd.DataFrame, credit_pipeline: Any) -> Case:
    """The demo's pipeline (a ColumnTransformer by column name): served without a DataFrame."""
    return Case(credit_pipeline, credit, "default", _classifier(credit_pipeline), "sklearn", 0.0)


def sklearn_columns_case(credit: pd.DataFrame, credit_pipeline: Any) -> Case:
    """One-hot text, imputed and scaled numbers by name, then boosting: served without a DataFrame."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = credit.copy()
    frame.loc[frame.index[::7], "income"] = np.nan
    numbers = ["age", "income", "debt_ratio", "months_employed"]
    columns = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), ["country", "employment"]),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), numbers),
        ]
    )
    model = Pipeline([("columns", columns), ("boost", HistGradientBoostingClassifier(max_iter=30))])
    model.fit(frame.drop(columns=["default"]), frame["default"])
    return Case(model, frame, "default", _classifier(model), "sklearn", 0.0)


def sklearn_regression_case(credit: pd.DataFrame, credit_pipeline: Any) -> Case:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge().fit(X, y)
    return Case(model, X.assign(y=y), "y", lambda x: (model.predict(x), None), "sklearn")


def sklearn_frame_case(credit: pd.DataFrame, credit_pipeline: Any) -> Case:
    """Histogram boosting fitted on a numeric DataFrame: served from a matrix by its positional twin."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = _cancer()
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)
    return Case(model, X.assign(label=y), "label", _classifier(model), "sklearn", 0.0)


def xgboost_case(credit: pd.DataFrame, credit_pipeline: Any) -> Case:
    import xgboost

    X, y = _cancer()
    model = xgboost.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(X, y)
    return Case(model, X.assign(label=y), "label", _classifier(model), "xgboost", 0.0)


def lightgbm_case(credit: pd.DataFrame, credit_pipeline: Any) -> Case:
    import lightgbm

    frame = credit.copy()
    for column in ("country", "employment"):
        frame[column] = frame[column].astype("category")
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1)
    model.fit(frame.drop(columns=["default"]), frame["default"])

    def expected(x: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        x = x.copy()
        for column in ("country", "employment"):
            x[column] = pd.Categorical(x[column], categories=frame[column].cat.categories)
        return model.predict(x), model.predict_proba(x)

    return Case(model, credit, "default", expected, "lightgbm", 1e-9)


def onnx_case(credit: pd.DataFrame, credit_pipeline: Any) -> Case:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    X, y = _cancer()
    model = LogisticRegression(max_iter=2000).fit(X, y)
    graph = to_onnx(model, X.to_numpy(np.float32)[:1], target_opset=15)
    return Case(graph, X.assign(label=y), "label", _classifier(model), "onnx", 1e-4)


def pyfunc_case(credit: pd.DataFrame, credit_pipeline: Any) -> Case:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    model = MeanModel()
    return Case(
        model,
        frame.assign(y=frame["a"] * 0.3),
        "y",
        lambda x: (model.predict(x), None),
        "pyfunc",
        trust_pickle=True,
    )


CASES = [
    sklearn_case,
    sklearn_columns_case,
    sklearn_regression_case,
    sklearn_frame_case,
    xgboost_case,
    lightgbm_case,
    onnx_case,
    pyfunc_case,
]


@pytest.fixture(params=CASES, ids=lambda f: f.__name__.removesuffix("_case"))
def case(request: pytest.FixtureRequest, credit: pd.DataFrame, credit_pipeline: Any) -> Case:
    built: Case = request.param(credit, credit_pipeline)
    return built


@pytest.fixture
def loaded(case: Case, sqlite_registry: Registry, signing_key: SigningKey) -> Any:
    version = sqlite_registry.register(
        case.model, name="conform", train_data=case.frame, target=case.target, trust_pickle=case.trust_pickle
    )
    assert version.flavor == case.flavor
    if case.trust_pickle:  # custom code is unpickled only when signed by a trusted key
        sqlite_registry.signatures.sign("conform:1", signing_key)
    return sqlite_registry.load("conform:1", trust_pickle=case.trust_pickle)


def _features(case: Case, rows: int | None = None) -> pd.DataFrame:
    frame = case.frame.drop(columns=[case.target])
    if rows is None:
        return frame
    index = np.random.default_rng(0).integers(0, len(frame), rows)
    return frame.iloc[index].reset_index(drop=True)


def _check_equal(case: Case, loaded: Any, frame: pd.DataFrame) -> None:
    predictions = loaded.predict(frame)
    assert predictions.n_rows == len(frame)
    labels, probabilities = case.expected(frame)
    if case.tolerance == 0.0:  # the same numbers, not merely close ones
        assert np.array_equal(predictions.values, np.asarray(labels))
        if probabilities is not None:
            assert np.array_equal(predictions.probabilities, probabilities)
        return
    if probabilities is None:
        np.testing.assert_allclose(
            predictions.values.astype(float), labels, rtol=case.tolerance, atol=case.tolerance
        )
        return
    assert predictions.probabilities is not None
    np.testing.assert_allclose(predictions.probabilities, probabilities, atol=case.tolerance)
    agree = np.mean(predictions.values.astype(str) == np.asarray(labels).astype(str))
    assert agree >= (1.0 if case.tolerance < 1e-6 else 0.999)


def test_round_trip_predicts_like_the_original_model(case: Case, loaded: Any) -> None:
    _check_equal(case, loaded, _features(case))


def test_contract_is_enforced_before_the_model_runs(case: Case, loaded: Any) -> None:
    row = _features(case).head(1).to_dict("records")[0]
    first = next(iter(row))
    numeric = next(f.name for f in loaded.contract.features if f.is_numeric)
    row[numeric] = "not a number"
    with pytest.raises(ContractViolationError, match=f"'{numeric}' of row 0"):
        loaded.predict([row])
    del row[first]
    with pytest.raises(ContractViolationError, match=f"missing column.*'{first}'"):
        loaded.predict([row])


def test_empty_batch_gives_empty_predictions(case: Case, loaded: Any) -> None:
    predictions = loaded.predict(_features(case).head(0))
    assert predictions.n_rows == 0
    if predictions.probabilities is not None:
        assert predictions.probabilities.shape == (0, len(loaded.contract.classes))


def test_one_row(case: Case, loaded: Any) -> None:
    _check_equal(case, loaded, _features(case).head(1))


def test_a_hundred_thousand_rows(case: Case, loaded: Any) -> None:
    _check_equal(case, loaded, _features(case, 100_000))
