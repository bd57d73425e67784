"""Exact interventional Shapley values of linear models, in closed form.

For `f(x) = w . x + b` against a background sample B, the value of a coalition S is
`w_S . x_S + w_~S . mean_B + b`, so column j's Shapley value is `w_j (x_j - mean_B x_j)` and the
base is `w . mean_B + b`: exact, and linear in the number of columns. A classifier's values are
in its margin ('log_odds': decision_function, one output per class, or one named by the positive
class for a binary margin); a regressor's in its prediction ('raw').
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.attribution.base import EXACT_TOLERANCE, Floats, Space
from shipyard.errors import ExplanationError

__all__ = ["Linear", "is_linear_estimator", "linear_explainer"]

_NOT_LINEAR = frozenset({"PoissonRegressor", "GammaRegressor", "TweedieRegressor", "SGDOneClassSVM"})
"""scikit-learn linear-model classes whose prediction is not w . x + b (a link function, or no
prediction to explain)."""


def dense(x: Any) -> Floats:
    """An estimator's input (array, sparse matrix, DataFrame) as a dense 2-D float array."""
    if hasattr(x, "toarray"):
        x = x.toarray()
    elif hasattr(x, "to_numpy"):
        x = x.to_numpy(dtype=np.float64)
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2:
        raise ExplanationError(f"a linear model's input has shape {array.shape}; expected rows x columns")
    return array


@dataclass(frozen=True)
class Linear:
    """A linear estimator's exact Shapley values on its input columns (a `ColumnExplainer`).

    Attributes:
        model: the fitted estimator; its own decision_function (classifiers) or predict
            (regressors) is the output.
        weights: (outputs, columns): each output's coefficients.
        intercept: (outputs,).
        mean: (columns,): the background sample's mean of each column.
        space: 'log_odds' for a classifier's margin, 'raw' for a regressor.
        outputs: each output's name: a class label as text, or 'value'.
    """

    model: Any
    weights: Floats
    intercept: Floats
    mean: Floats
    space: Space
    outputs: tuple[str, ...]

    @property
    def method(self) -> str:
        """Always 'linear'."""
        return "linear"

    def base(self) -> Floats:
        """(outputs,): the model's output at the background mean: w . mean + b."""
        return np.asarray(self.weights @ self.mean + self.intercept, dtype=np.float64)

    def attribute(self, x: Any) -> Floats:
        """(rows, columns, outputs): w_j (x_j - mean_j) for each output."""
        centred = dense(x) - self.mean
        return np.asarray(centred[:, :, None] * self.weights.T[None, :, :], dtype=np.float64)

    def output(self, x: Any) -> Floats:
        """(rows, outputs): the model's own decision_function (classifier) or predict."""
        margin = self.space == "log_odds"
        values = self.model.decision_function(x) if margin else self.model.predict(x)
        return np.asarray(values, dtype=np.float64).reshape(-1, len(self.outputs))


def is_linear_estimator(model: Any) -> bool:
    """True for a fitted scikit-learn estimator of the kinds `linear_explainer` may explain: asked
    first, since the background it needs must be put through the model's front, which only a
    scikit-learn model's inputs go through (an ONNX session's text features do not)."""
    kind = type(model)
    module = kind.__module__
    known = module.startswith("sklearn.linear_model") or (
        module.startswith("sklearn.svm") and kind.__name__ in ("LinearSVC", "LinearSVR")
    )
    return known and kind.__name__ not in _NOT_LINEAR and hasattr(model, "coef_")


def linear_explainer(model: Any, *, background: Any, classes: tuple[Any, ...] | None) -> Linear | None:
    """The closed-form explainer of a fitted linear estimator, or None if it is not one.

    Args:
        model: the final estimator (LinearRegression, Ridge, Lasso, ElasticNet, SGDRegressor,
            HuberRegressor, ...; LogisticRegression, SGDClassifier, RidgeClassifier, LinearSVC,
            ...).
        background: the background sample as the estimator is given it (a pipeline front's
            transform of the background rows): array, sparse matrix or DataFrame, >= 1 row.
        classes: the version's class labels in the model's order (None: the model's
            `classes_`); they name the outputs.

    Returns:
        None for anything that is not a single-target linear classifier or regressor whose
        output is w . x + b, checked on the background sample.

    Raises:
        ExplanationError: the background sample is empty or not the estimator's width.
    """
    from sklearn.base import is_classifier, is_regressor

    if not is_linear_estimator(model):
        return None
    weights = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
    intercept = np.broadcast_to(
        np.asarray(model.intercept_, dtype=np.float64).reshape(-1), (weights.shape[0],)
    ).copy()
    if is_classifier(model):
        labels = tuple(model.classes_) if classes is None else tuple(classes)
        if len(labels) != len(model.classes_) or len(labels) < 2:
            return None
        names = (str(labels[1]),) if weights.shape[0] == 1 else tuple(str(c) for c in labels)
        if len(names) != weights.shape[0]:
            return None
        space: Space = "log_odds"
    elif is_regressor(model):
        if weights.shape[0] != 1:
            return None
        names, space = ("value",), "raw"
    else:
        return None
    sample = dense(background)
    if sample.shape[0] == 0 or sample.shape[1] != weights.shape[1]:
        raise ExplanationError(
            f"the background sample given to the linear explainer has shape {sample.shape}; "
            f"expected at least one row of the estimator's {weights.shape[1]} input columns"
        )
    explainer = Linear(model, weights, intercept, sample.mean(axis=0), space, names)
    # The closed form holds only if the model's own output is w . x + b: check it.
    own = explainer.output(background)
    formed = sample @ weights.T + intercept
    scale = 1.0 + float(np.max(np.abs(own), initial=0.0))
    if own.shape != formed.shape or not np.max(np.abs(own - formed)) <= EXACT_TOLERANCE * 1e-2 * scale:
        return None
    return explainer
