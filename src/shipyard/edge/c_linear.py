"""scikit-learn linear models and simple pipelines as C, and what the C export refuses.

`linear_c` writes the coefficients as const tables and scores as scikit-learn does: the decision
`x . coef + intercept` per row of `coef_`, then the logistic function (binary), softmax
(multinomial LogisticRegression) or the one-vs-rest normalisation (SGDClassifier's log loss,
OneVsRestClassifier of LogisticRegression).
Classifiers without `predict_proba` (LinearSVC, RidgeClassifier, SGDClassifier with the hinge
loss) give their decision values, and the label is scikit-learn's rule: decision > 0 for a binary
model, else the largest. `model_c` picks the writer for any model, a Pipeline's scalers and
imputers going before it (`Prepare`), and refuses the rest naming what would work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from shipyard.edge.c_code import ensemble_c
from shipyard.edge.c_source import (
    CSource,
    Dtype,
    LabelRule,
    Prepare,
    header_c,
    label_c,
    post_c,
    prepare_c,
    real_table,
    real_type,
)
from shipyard.edge.ensemble import Ensemble
from shipyard.errors import UnsupportedExportError

__all__ = ["LINEAR_MODELS", "CModel", "linear_c", "model_c"]

_CLASSIFIERS_WITH_PROBABILITIES = {"LogisticRegression", "LogisticRegressionCV"}
_CLASSIFIERS_WITH_DECISIONS = {"LinearSVC", "RidgeClassifier", "RidgeClassifierCV", "Perceptron"}
_ONE_VS_REST = {"SGDClassifier", "OneVsRestClassifier"}
_REGRESSORS = {
    "LinearRegression",
    "Ridge",
    "RidgeCV",
    "Lasso",
    "LassoCV",
    "ElasticNet",
    "ElasticNetCV",
    "SGDRegressor",
    "LinearSVR",
    "HuberRegressor",
    "BayesianRidge",
}
LINEAR_MODELS = frozenset(
    {*_CLASSIFIERS_WITH_PROBABILITIES, *_CLASSIFIERS_WITH_DECISIONS, *_REGRESSORS, *_ONE_VS_REST}
)
"""The scikit-learn linear models `linear_c` writes."""

_WHAT_WORKS = (
    "the C export covers tree ensembles (scikit-learn trees, forests, GradientBoosting, "
    "HistGradientBoosting, XGBoost, LightGBM) and linear models (" + ", ".join(sorted(LINEAR_MODELS)) + ")"
)


@dataclass(frozen=True)
class CModel:
    """A model written as C, and the ensemble it was written from when its thresholds are on the
    model's inputs (None for a linear model, or trees after a scaler): the parity gate's edge
    rows are drawn at those thresholds."""

    source: CSource
    ensemble: Ensemble | None


def model_c(
    model: Any, *, name: str, dtype: Dtype, read_ensemble: Callable[[Any], Ensemble | None]
) -> CModel:
    """Any supported model as C: a linear model, a tree ensemble, or a Pipeline of scalers and
    imputers before one of them.

    Args:
        model: the fitted model (`LoadedModel.model`).
        name: the C prefix and file stem.
        dtype: "float64" or "float32".
        read_ensemble: reads a tree model into an `Ensemble`, None for anything else
            (`shipyard.edge.trees.read_ensemble`).

    Raises:
        UnsupportedExportError: a step or the model has no C writer; the message names it and what works.
    """
    prepare = Prepare()
    final = model
    if type(model).__name__ == "Pipeline":
        steps = [step for _, step in model.steps if step is not None and step != "passthrough"]
        prepare = _prepare(steps[:-1])
        final = steps[-1]
    kind = type(final).__name__
    if kind in LINEAR_MODELS:
        return CModel(linear_c(final, name=name, dtype=dtype, prepare=prepare), None)
    if kind.startswith("MLP"):
        raise UnsupportedExportError(
            f"{kind}: {_WHAT_WORKS}; export the MLP to ONNX instead (--to onnx), "
            "which ONNX Runtime runs on devices"
        )
    if kind in {"SVC", "NuSVC"}:
        raise UnsupportedExportError(
            f"{kind}: its probabilities come from libsvm's iterative pairwise coupling, which the C "
            "export does not write; fit LinearSVC or LogisticRegression for C, or export with --to onnx"
        )
    ensemble = read_ensemble(final)
    if ensemble is None:
        raise UnsupportedExportError(f"{kind}: {_WHAT_WORKS}; try --to onnx, which converts more models")
    source = ensemble_c(ensemble, name=name, dtype=dtype, prepare=prepare)
    return CModel(source, None if prepare.steps else ensemble)


def linear_c(model: Any, *, name: str, dtype: Dtype = "float64", prepare: Prepare | None = None) -> CSource:
    """A fitted scikit-learn linear model as C that answers as its `predict_proba` (classifiers
    that have it), `decision_function` (classifiers that do not) or `predict` (regressors).

    Args:
        model: one of `LINEAR_MODELS`, fitted.
        name: the C prefix and file stem.
        dtype: "float64" or "float32".
        prepare: a pipeline's imputing and scaling before the model.

    Raises:
        UnsupportedExportError: the model is not one of `LINEAR_MODELS`, or an SGDClassifier whose
            loss gives probabilities by another formula (modified_huber).
    """
    kind = type(model).__name__
    if kind not in LINEAR_MODELS:
        raise UnsupportedExportError(f"{kind}: {_WHAT_WORKS}")
    coef, intercept = _coefficients(model, kind)
    classes = getattr(model, "classes_", None)
    classes = None if classes is None or kind in _REGRESSORS else tuple(np.asarray(classes).tolist())
    post, rule, scores = _scoring(model, kind, n_rows=len(coef))
    n_outputs = 2 if post == "logistic" else len(coef)
    real = real_type(dtype)
    upper = name.upper()
    source = CSource(
        name=name,
        header="",
        source="",
        dtype=dtype,
        n_features=coef.shape[1],
        n_outputs=n_outputs,
        classes=classes,
        scores=scores,
    )
    prep_tables, prep_lines = prepare_c(prepare or Prepare(), name=name, dtype=dtype, round32=False)
    body = (
        f"#define {upper}_N_ROWS {len(coef)}\n"
        "/* coef holds N_ROWS rows of N_FEATURES coefficients. */\n"
        + real_table(f"{name}_coef", coef, dtype)
        + real_table(f"{name}_intercept", intercept, dtype)
        + prep_tables
        + f"\nvoid {name}_predict(const {real} *features, {real} *out)\n{{\n"
        f"    {real} x[{upper}_N_FEATURES];\n    {real} z[{upper}_N_ROWS];\n    int i, j;\n"
        f"{prep_lines}\n"
        f"    for (i = 0; i < {upper}_N_ROWS; ++i) {{\n        {real} sum = 0;\n"
        f"        for (j = 0; j < {upper}_N_FEATURES; ++j)\n"
        f"            sum += x[j] * {name}_coef[i * {upper}_N_FEATURES + j];\n"
        f"        z[i] = sum + {name}_intercept[i];\n    }}\n"
        f"{post_c(post, n_raw=len(coef), dtype=dtype)}\n}}\n"
    )
    if classes is not None and rule is not None:
        body += "\n" + label_c(rule, name=name, dtype=dtype)
    header = header_c(source, model=kind, rule=rule)
    text = "\n".join([f'#include "{name}.h"', "", "#include <math.h>", "", body])
    return replace(source, header=header, source=text)


def _coefficients(model: Any, kind: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The rows of coefficients and their intercepts; one row per one-vs-rest estimator."""
    if kind != "OneVsRestClassifier":
        coef = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
        return coef, np.broadcast_to(np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64)), len(coef))
    inner = {type(e).__name__ for e in model.estimators_}
    if inner != {"LogisticRegression"}:
        raise UnsupportedExportError(
            f"OneVsRestClassifier of {', '.join(sorted(inner))}: the C export writes one-vs-rest "
            "LogisticRegression only; fit LogisticRegression (multinomial) or export with --to onnx"
        )
    rows = [_coefficients(e, "LogisticRegression") for e in model.estimators_]
    return np.vstack([c for c, _ in rows]), np.concatenate([i for _, i in rows])


def _scoring(model: Any, kind: str, *, n_rows: int) -> tuple[str, LabelRule | None, bool]:
    """The post transform, the label rule and whether the outputs are probabilities."""
    if kind in _REGRESSORS:
        if n_rows > 1:
            raise UnsupportedExportError(
                f"{kind} with {n_rows} targets: the C export writes a model of one target; fit one "
                "model per target, or export with --to onnx"
            )
        return "none", None, False
    binary = n_rows == 1
    if (kind == "SGDClassifier" and model.loss == "log_loss") or kind == "OneVsRestClassifier":
        return ("logistic" if binary else "ovr"), "argmax", True
    if kind == "SGDClassifier" and hasattr(model, "predict_proba"):
        raise UnsupportedExportError(
            f"SGDClassifier(loss={model.loss!r}): its probabilities are not written to C; refit with "
            "loss='log_loss' (probabilities) or 'hinge' (decision values), or export with --to onnx"
        )
    if kind in _CLASSIFIERS_WITH_PROBABILITIES:
        return ("logistic" if binary else "softmax"), "argmax", True
    return "none", ("sign" if binary else "argmax"), False


def _prepare(steps: list[Any]) -> Prepare:
    """A pipeline's steps before its model as one `Prepare`."""
    fill = None
    scalings: list[tuple[Any, ...]] = []
    for step in steps:
        kind = type(step).__name__
        if kind == "SimpleImputer" and not scalings and fill is None:
            fill = _imputer_fill(step)
        elif kind == "StandardScaler":
            scalings.append(("standard", step.mean_, step.scale_))
        elif kind == "MinMaxScaler":
            scalings.append(("minmax", step.scale_, step.min_, step.feature_range if step.clip else None))
        elif kind == "SimpleImputer":
            raise UnsupportedExportError(
                "SimpleImputer after another step: the C export imputes first; "
                "put the imputer first in the pipeline"
            )
        elif kind in {"OneHotEncoder", "OrdinalEncoder", "ColumnTransformer", "TargetEncoder"}:
            raise UnsupportedExportError(
                f"{kind}: the C export takes numeric features only (a pipeline of SimpleImputer, "
                "StandardScaler and MinMaxScaler before a tree ensemble or linear model); export "
                "this pipeline with --to onnx, which takes the category strings, or fit "
                "HistGradientBoosting, LightGBM or XGBoost on pandas categories, whose C export maps "
                "category strings to codes itself"
            )
        else:
            raise UnsupportedExportError(
                f"{kind}: a pipeline exported to C may hold SimpleImputer, StandardScaler and "
                "MinMaxScaler before a tree ensemble or linear model; export it with --to onnx"
            )
    return Prepare(fill=fill, steps=tuple(scalings))


def _imputer_fill(imputer: Any) -> np.ndarray[Any, Any]:
    missing = imputer.missing_values
    if not (isinstance(missing, float) and np.isnan(missing)) or imputer.add_indicator:
        raise UnsupportedExportError(
            f"SimpleImputer(missing_values={missing!r}, add_indicator={imputer.add_indicator}): the C "
            "export imputes NaN only, without indicator columns; export with --to onnx"
        )
    fill = np.asarray(imputer.statistics_, dtype=np.float64)
    if np.isnan(fill).any():
        raise UnsupportedExportError(
            "SimpleImputer: a column was empty when it was fitted, so scikit-learn drops it; the C "
            "export keeps every column (refit with keep_empty_features=True, or export with --to onnx)"
        )
    return fill
