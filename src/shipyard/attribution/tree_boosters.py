"""XGBoost and LightGBM explained by their own exact TreeSHAP (`pred_contribs` / `pred_contrib`).

Both libraries compute path-dependent TreeSHAP on their margin (raw score) and give the bias
(the expected margin) as a last column; the margin is their prediction with
`output_margin=True` / `raw_score=True`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.attribution.base import ColumnExplainer, Floats, Space

__all__ = ["BoosterExplainer", "booster_explainer"]


@dataclass(frozen=True)
class BoosterExplainer:
    """A booster that explains itself (a `ColumnExplainer`).

    Attributes:
        contributions: x -> (rows, columns + 1, outputs), the bias last.
        margin: x -> (rows, outputs), the booster's raw score.
        bias: (outputs,) the expected margin.
        n_columns: how many input columns the booster has.
    """

    method: str
    space: Space
    outputs: tuple[str, ...]
    contributions: Callable[[Any], Floats]
    margin: Callable[[Any], Floats]
    bias: Floats
    n_columns: int

    def base(self) -> Floats:
        """(outputs,): the booster's expected margin."""
        return self.bias.copy()

    def attribute(self, x: Any) -> Floats:
        """(rows, columns, outputs): the booster's own contributions, without the bias."""
        if len(x) == 0:
            return np.zeros((0, self.n_columns, len(self.bias)), dtype=np.float64)
        return self.contributions(x)[:, :-1, :]

    def output(self, x: Any) -> Floats:
        """(rows, outputs): the booster's margin."""
        if len(x) == 0:
            return np.zeros((0, len(self.bias)), dtype=np.float64)
        return self.margin(x)


def booster_explainer(model: Any, *, classes: tuple[Any, ...] | None) -> ColumnExplainer | None:
    """The explainer of an XGBoost or LightGBM model (wrapper or Booster), or None.

    Args:
        model: an XGBClassifier/XGBRegressor/Booster or LGBMClassifier/LGBMRegressor/Booster.
        classes: the version's classes (None for a regressor).
    """
    module = type(model).__module__.split(".")[0]
    if module == "xgboost":
        return _xgboost(model, classes)
    if module == "lightgbm":
        return _lightgbm(model, classes)
    return None


def _by_output(raw: Any, width: int) -> Floats:
    """(rows, width, outputs) from a library's (rows, width) or (rows, outputs, width)."""
    array = np.asarray(raw, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == width:
        return array[:, :, None]
    if array.ndim == 2:  # LightGBM multiclass: (rows, outputs * width), class by class
        array = array.reshape(len(array), -1, width)
    return np.ascontiguousarray(np.transpose(array, (0, 2, 1)))


def _space(labels: tuple[Any, ...] | None, objective: str) -> Space:
    """A classifier's margin is its log-odds; a Booster without classes is a classifier when
    its objective is one."""
    if labels is not None or objective.startswith(("binary", "multi")):
        return "log_odds"
    return "raw"


def _names(classes: tuple[Any, ...] | None, n_outputs: int, space: Space) -> tuple[str, ...]:
    """Each output's name; a Booster without classes has the labels 0..K-1 its objectives
    require (a binary margin is the log-odds of 1)."""
    if classes is None:
        if n_outputs == 1:
            return ("1",) if space == "log_odds" else ("value",)
        return tuple(str(k) for k in range(n_outputs))
    labels = tuple(str(c) for c in classes)
    return (labels[-1],) if n_outputs == 1 and len(labels) == 2 else labels


def _xgboost(model: Any, classes: tuple[Any, ...] | None) -> ColumnExplainer | None:
    import xgboost as xgb

    wrapper = not isinstance(model, xgb.Booster)
    if wrapper and not hasattr(model, "get_booster"):
        return None
    try:
        booster = model.get_booster() if wrapper else model
    except AttributeError:  # an unfitted wrapper (NotFittedError), as LightGBM's has no booster_
        return None
    width = int(booster.num_features()) + 1
    missing = float(getattr(model, "missing", np.nan)) if wrapper else np.nan
    try:
        best = int(model.best_iteration) if wrapper else 0
        rounds: tuple[int, int] = (0, best + 1) if wrapper else (0, 0)
    except AttributeError:
        rounds = (0, 0)

    def matrix(x: Any) -> Any:
        return xgb.DMatrix(x, missing=missing, enable_categorical=True)

    def contributions(x: Any) -> Floats:
        raw = booster.predict(matrix(x), pred_contribs=True, iteration_range=rounds)
        return _by_output(raw, width)

    def margin(x: Any) -> Floats:
        if wrapper:
            raw = model.predict(x, output_margin=True)
        else:
            raw = booster.predict(matrix(x), output_margin=True, iteration_range=rounds)
        array = np.asarray(raw, dtype=np.float64)
        return array.reshape(len(array), -1)

    empty = xgb.DMatrix(
        np.full((1, width - 1), np.nan),
        feature_names=booster.feature_names,
        feature_types=booster.feature_types,
        enable_categorical=True,
    )
    bias = _by_output(booster.predict(empty, pred_contribs=True, iteration_range=rounds), width)
    labels = classes if classes is not None else getattr(model, "classes_", None)
    labels = None if labels is None else tuple(labels)
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    space = _space(labels, str(objective))
    return BoosterExplainer(
        "xgboost_contribs",
        space,
        _names(labels, bias.shape[2], space),
        contributions,
        margin,
        bias[0, -1, :].copy(),
        width - 1,
    )


def _lightgbm(model: Any, classes: tuple[Any, ...] | None) -> ColumnExplainer | None:
    import lightgbm as lgb

    wrapper = not isinstance(model, lgb.Booster)
    if wrapper and not hasattr(model, "booster_"):
        return None
    booster = model.booster_ if wrapper else model
    width = int(booster.num_feature()) + 1
    own = model if wrapper else booster

    def contributions(x: Any) -> Floats:
        return _by_output(own.predict(x, pred_contrib=True), width)

    def margin(x: Any) -> Floats:
        array = np.asarray(own.predict(x, raw_score=True), dtype=np.float64)
        return array.reshape(len(array), -1)

    empty = np.full((1, width - 1), np.nan)
    bias = _by_output(booster.predict(empty, pred_contrib=True), width)
    labels = classes if classes is not None else getattr(model, "classes_", None)
    labels = None if labels is None else tuple(labels)
    space = _space(labels, str(booster.params.get("objective", "")))
    return BoosterExplainer(
        "lightgbm_contribs",
        space,
        _names(labels, bias.shape[2], space),
        contributions,
        margin,
        bias[0, -1, :].copy(),
        width - 1,
    )
