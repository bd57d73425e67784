"""The models the export tests convert, registered in one home (tests/conftest.py makes it once).

The frame is the credit data (int64, float64 with missing values, strings) with a bool column;
the models are the ones skl2onnx converts (trees are exported by our own code, tested beside it).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, SplineTransformer, StandardScaler
from sklearn.svm import SVC

from shipyard import Registry
from shipyard.datasets import make_credit

NUMERIC = ["age", "income", "debt_ratio", "months_employed"]
TEXT = ["country", "employment"]


class Doubler:
    """A custom Python model (pyfunc): no converter can read its code."""

    def predict(self, frame: Any) -> Any:
        return np.asarray(frame["age"], dtype=float) * 2.0


def applications_frame() -> pd.DataFrame:
    """300 credit rows with a bool column `vip`; `income` has missing values."""
    frame = make_credit(300, seed=5)
    return frame.assign(vip=frame["age"] % 3 == 0)


def _front(text: Any, numeric: list[str] = NUMERIC) -> ColumnTransformer:
    numbers = make_pipeline(SimpleImputer(), StandardScaler())
    return ColumnTransformer(
        [("numbers", numbers, numeric), ("text", text, TEXT), ("flag", "passthrough", ["vip"])]
    )


def fit(model: Any, frame: pd.DataFrame, target: str = "default") -> Any:
    """`model` fitted on `frame` less `target`."""
    return model.fit(frame.drop(columns=[target]), frame[target])


def fill_edge_home(registry: Registry, applications: pd.DataFrame) -> None:
    """Register in `registry`: credit:1 (OneHotEncoder + StandardScaler + LogisticRegression),
    mlp:1 (an MLP behind an OrdinalEncoder), plain:1 (a logistic regression fitted on a numpy
    array), debt:1 (a ridge regression of `debt_ratio`), svc:1 (a linear SVC with probabilities),
    rbf:1 (an RBF SVC with probabilities on unscaled numbers, which skl2onnx computes in float32:
    its export misses parity), spline:1 (a pipeline with a SplineTransformer) and custom:1 (a
    pyfunc)."""
    frame = applications
    numbers = frame[NUMERIC].fillna(0.0)
    regression = frame.drop(columns=["default"])

    lr = Pipeline([("prep", _front(OneHotEncoder(handle_unknown="ignore"))), ("clf", LogisticRegression())])
    registry.register(fit(lr, frame), name="credit", train_data=frame, target="default")
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    classifier = MLPClassifier(hidden_layer_sizes=(6,), max_iter=300, random_state=0)
    mlp = Pipeline([("prep", _front(ordinal)), ("mlp", classifier)])
    with warnings.catch_warnings():  # the MLP need not converge to be exported
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit(mlp, frame)
    registry.register(mlp, name="mlp", train_data=frame, target="default")
    plain = LogisticRegression().fit(numbers.to_numpy(), frame["default"])
    registry.register(
        plain, name="plain", train_data=numbers.assign(default=frame["default"]), target="default"
    )
    others = [n for n in NUMERIC if n != "debt_ratio"]
    ridge = Pipeline([("prep", _front(OneHotEncoder(handle_unknown="ignore"), others)), ("ridge", Ridge())])
    ridge.fit(regression.drop(columns=["debt_ratio"]), regression["debt_ratio"])
    registry.register(ridge, name="debt", train_data=regression, target="debt_ratio")
    svc = Pipeline(
        [
            ("prep", _front(OneHotEncoder(handle_unknown="ignore"))),
            ("svc", SVC(kernel="linear", probability=True, random_state=0)),
        ]
    )
    measures = frame[[*NUMERIC, "default"]]
    rbf = make_pipeline(SimpleImputer(), SVC(kernel="rbf", probability=True, random_state=0))
    with warnings.catch_warnings():  # SVC(probability=True) is deprecated in scikit-learn 1.9
        warnings.simplefilter("ignore", FutureWarning)
        fit(svc, frame)
        fit(rbf, measures)
    registry.register(svc, name="svc", train_data=frame, target="default")
    registry.register(rbf, name="rbf", train_data=measures, target="default")
    spline = Pipeline([("spline", SplineTransformer(n_knots=3)), ("clf", LogisticRegression())])
    spline.fit(numbers, frame["default"])
    registry.register(
        spline, name="spline", train_data=numbers.assign(default=frame["default"]), target="default"
    )
    ages = frame[["age"]].assign(twice=frame["age"] * 2.0)
    registry.register(Doubler(), name="custom", train_data=ages, target="twice", trust_pickle=True)
