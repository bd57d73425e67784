"""The export zoo: the model families users export, each fitted as users fit them, small.

Each entry is a name, a family and a function that returns the fitted model and its training
frame (target column `y`). Binary, multiclass and regression; numpy-like numeric frames,
missing values, pandas categorical columns and pipelines over mixed DataFrames. The last entries
are ones the export refuses, to show that a refusal names the step it could not convert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

ROWS = 400
SEED = 3


@dataclass(frozen=True)
class Entry:
    """One model of the zoo."""

    name: str
    family: str
    task: str
    fit: Callable[[], tuple[Any, pd.DataFrame]]
    refused: bool = False  # the export is expected to refuse it, naming the step


def numeric(task: str, *, features: int = 6, missing: bool = False, seed: int = SEED) -> pd.DataFrame:
    """Numeric features f0.. and a target `y`: 0/1, 0/1/2 or a value."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, features)).round(3)
    signal = x[:, 0] + 0.8 * x[:, 1] - 0.5 * x[:, 2] + 0.3 * rng.normal(size=ROWS)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(features)])
    if missing:
        frame = frame.mask(rng.random(frame.shape) < 0.1)
    if task == "binary":
        frame["y"] = (signal > 0).astype(int)
    elif task == "multiclass":
        frame["y"] = np.digitize(signal, [-0.6, 0.6])
    else:
        frame["y"] = (3 * signal + 10).round(4)
    return frame


def mixed(task: str, *, categorical_dtype: bool = False, seed: int = SEED) -> pd.DataFrame:
    """Numbers (one integer, one with missing values) and two string columns."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, ROWS),
            "income": rng.lognormal(8, 0.5, ROWS).round(2),
            "ratio": np.where(rng.random(ROWS) < 0.1, np.nan, rng.random(ROWS).round(3)),
            "country": rng.choice(["DE", "FR", "IT", "ES"], ROWS),
            "plan": rng.choice(["basic", "plus", "pro"], ROWS),
        }
    )
    signal = (
        (frame["age"] - 45) / 15
        + np.log(frame["income"])
        - 8
        + frame["country"].map({"DE": 0.8, "FR": -0.5, "IT": 0.2, "ES": -0.6})
        + frame["plan"].map({"basic": -0.4, "plus": 0.1, "pro": 0.6})
        + 0.3 * rng.normal(size=ROWS)
    )
    if categorical_dtype:
        frame["country"] = frame["country"].astype("category")
        frame["plan"] = frame["plan"].astype("category")
    if task == "binary":
        frame["y"] = (signal > 0).astype(int)
    elif task == "multiclass":
        frame["y"] = np.digitize(signal, [-0.6, 0.6])
    else:
        frame["y"] = (3 * signal + 10).round(4)
    return frame


def _on(frame: pd.DataFrame, model: Any) -> tuple[Any, pd.DataFrame]:
    model.fit(frame.drop(columns=["y"]), frame["y"])
    return model, frame


def _sk(build: Callable[[], Any], task: str, **data: Any) -> Callable[[], tuple[Any, pd.DataFrame]]:
    return lambda: _on(numeric(task, **data), build())


def _mixed(build: Callable[[], Any], task: str, **data: Any) -> Callable[[], tuple[Any, pd.DataFrame]]:
    return lambda: _on(mixed(task, **data), build())


def _column_pipeline(final: Any, *, encoder: str = "onehot") -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    if encoder == "onehot":
        categories: Any = OneHotEncoder(handle_unknown="ignore")
    else:
        categories = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan)
    front = ColumnTransformer(
        [
            ("categories", categories, ["country", "plan"]),
            (
                "numbers",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                ["age", "income", "ratio"],
            ),
        ]
    )
    return Pipeline([("front", front), ("model", final)])


def entries() -> list[Entry]:
    """The zoo, in the order of the docs' coverage table."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDClassifier
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, StandardScaler
    from sklearn.svm import SVC, LinearSVC
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    zoo = [
        Entry("logistic-binary", "linear", "binary", _sk(LogisticRegression, "binary")),
        Entry("logistic-multiclass", "linear", "multiclass", _sk(LogisticRegression, "multiclass")),
        Entry("linear-regression", "linear", "regression", _sk(LinearRegression, "regression")),
        Entry("ridge", "linear", "regression", _sk(lambda: Ridge(alpha=0.5), "regression")),
        Entry("sgd-hinge", "linear", "binary", _sk(lambda: SGDClassifier(random_state=0), "binary")),
        Entry("linear-svc", "svm", "binary", _sk(LinearSVC, "binary")),
        Entry(
            "svc-linear-kernel",
            "svm",
            "binary",
            _sk(lambda: SVC(kernel="linear", probability=True, random_state=0), "binary"),
        ),
        Entry(
            "decision-tree",
            "tree",
            "multiclass",
            _sk(lambda: DecisionTreeClassifier(max_depth=6, random_state=0), "multiclass"),
        ),
        Entry(
            "decision-tree-regressor",
            "tree",
            "regression",
            _sk(lambda: DecisionTreeRegressor(max_depth=6, random_state=0), "regression", missing=True),
        ),
        Entry(
            "random-forest",
            "forest",
            "binary",
            _sk(lambda: RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0), "binary"),
        ),
        Entry(
            "random-forest-regressor",
            "forest",
            "regression",
            _sk(lambda: RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0), "regression"),
        ),
        Entry(
            "extra-trees",
            "forest",
            "multiclass",
            _sk(lambda: ExtraTreesClassifier(n_estimators=20, max_depth=6, random_state=0), "multiclass"),
        ),
        Entry(
            "gradient-boosting",
            "boosting",
            "binary",
            _sk(lambda: GradientBoostingClassifier(n_estimators=30, random_state=0), "binary"),
        ),
        Entry(
            "gradient-boosting-multiclass",
            "boosting",
            "multiclass",
            _sk(lambda: GradientBoostingClassifier(n_estimators=20, random_state=0), "multiclass"),
        ),
        Entry(
            "gradient-boosting-regressor",
            "boosting",
            "regression",
            _sk(lambda: GradientBoostingRegressor(n_estimators=30, random_state=0), "regression"),
        ),
        Entry(
            "hist-gradient-boosting-missing",
            "hgb",
            "binary",
            _sk(lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0), "binary", missing=True),
        ),
        Entry(
            "hist-gradient-boosting-multiclass",
            "hgb",
            "multiclass",
            _sk(lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0), "multiclass"),
        ),
        Entry(
            "hist-gradient-boosting-regressor",
            "hgb",
            "regression",
            _sk(
                lambda: HistGradientBoostingRegressor(max_iter=30, random_state=0), "regression", missing=True
            ),
        ),
        Entry(
            "hist-gradient-boosting-categorical",
            "hgb",
            "binary",
            _mixed(
                lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
                "binary",
                categorical_dtype=True,
            ),
        ),
        Entry(
            "hist-gradient-boosting-categorical-regressor",
            "hgb",
            "regression",
            _mixed(
                lambda: HistGradientBoostingRegressor(max_iter=30, random_state=0),
                "regression",
                categorical_dtype=True,
            ),
        ),
        Entry(
            "mlp", "mlp", "binary", _sk(lambda: MLPClassifier((16,), max_iter=300, random_state=0), "binary")
        ),
        Entry(
            "mlp-regressor",
            "mlp",
            "regression",
            _sk(
                lambda: make_pipeline(
                    StandardScaler(), MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0)
                ),
                "regression",
            ),
        ),
        Entry(
            "pipeline-onehot-logistic",
            "pipeline",
            "binary",
            _mixed(lambda: _column_pipeline(LogisticRegression(max_iter=500)), "binary"),
        ),
        Entry(
            "pipeline-ordinal-hgb",
            "pipeline",
            "multiclass",
            _mixed(
                lambda: _column_pipeline(
                    HistGradientBoostingClassifier(max_iter=20, categorical_features=[0, 1], random_state=0),
                    encoder="ordinal",
                ),
                "multiclass",
            ),
        ),
        Entry(
            "pipeline-onehot-forest",
            "pipeline",
            "regression",
            _mixed(
                lambda: _column_pipeline(RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0)),
                "regression",
            ),
        ),
        Entry(
            "pipeline-impute-minmax-mlp",
            "pipeline",
            "multiclass",
            _sk(
                lambda: make_pipeline(
                    SimpleImputer(), MinMaxScaler(), MLPClassifier((16,), max_iter=300, random_state=0)
                ),
                "multiclass",
                missing=True,
            ),
        ),
        Entry(
            "pipeline-passthrough-gbm",
            "pipeline",
            "binary",
            _mixed(
                lambda: Pipeline(
                    [
                        (
                            "front",
                            ColumnTransformer(
                                [
                                    ("onehot", OneHotEncoder(handle_unknown="ignore"), ["country", "plan"]),
                                    ("impute", SimpleImputer(), ["ratio"]),
                                ],
                                remainder="passthrough",
                            ),
                        ),
                        ("model", GradientBoostingClassifier(n_estimators=20, random_state=0)),
                    ]
                ),
                "binary",
            ),
        ),
    ]
    zoo += _boosters()
    zoo.append(
        Entry(
            "pipeline-function-transformer",
            "pipeline",
            "binary",
            _sk(
                lambda: Pipeline([("log", FunctionTransformer(np.abs)), ("model", LogisticRegression())]),
                "binary",
            ),
            refused=True,
        )
    )
    return zoo


def _boosters() -> list[Entry]:
    import lightgbm as lgb
    import xgboost as xgb

    def xgb_model(**extra: Any) -> Callable[[], Any]:
        return lambda: (xgb.XGBRegressor if extra.pop("regressor", False) else xgb.XGBClassifier)(
            n_estimators=20, max_depth=4, random_state=0, **extra
        )

    def lgb_model(regressor: bool = False) -> Callable[[], Any]:
        kind = lgb.LGBMRegressor if regressor else lgb.LGBMClassifier
        return lambda: kind(n_estimators=20, num_leaves=15, random_state=0, verbose=-1)

    return [
        Entry("xgboost", "xgboost", "binary", _sk(xgb_model(), "binary", missing=True)),
        Entry("xgboost-multiclass", "xgboost", "multiclass", _sk(xgb_model(), "multiclass")),
        Entry(
            "xgboost-regressor",
            "xgboost",
            "regression",
            _sk(xgb_model(regressor=True), "regression", missing=True),
        ),
        Entry(
            "xgboost-categorical",
            "xgboost",
            "binary",
            _mixed(xgb_model(enable_categorical=True, tree_method="hist"), "binary", categorical_dtype=True),
        ),
        Entry("lightgbm", "lightgbm", "binary", _sk(lgb_model(), "binary", missing=True)),
        Entry("lightgbm-multiclass", "lightgbm", "multiclass", _sk(lgb_model(), "multiclass")),
        Entry(
            "lightgbm-regressor",
            "lightgbm",
            "regression",
            _sk(lgb_model(regressor=True), "regression", missing=True),
        ),
        Entry(
            "lightgbm-categorical",
            "lightgbm",
            "binary",
            _mixed(lgb_model(), "binary", categorical_dtype=True),
        ),
    ]
