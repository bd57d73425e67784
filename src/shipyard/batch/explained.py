"""Explanation columns of a batch job's output (`--explain`): each scored row's attributions.

A job run with `--explain` explains the rows it predicts through the same engines as `shipyard
explain` (`shipyard.explanations.explaining.explain_rows`, with the batch's quarantine policy: a
rejected row is neither predicted nor explained). Each output row gains:

    shap_<feature>            the feature's attribution, one column per contract feature, when
                              the explanation has one output (a regressor's 'value', a binary
                              margin);
    shap_<output>_<feature>   the same per output when it has several (a classifier's
                              probabilities: one set of columns per class, named by the class);
    shap_base                 the base value (`shap_base_<output>` per output when several);
    shap_additivity_error     |sum of attributions + base - the model's output|, largest over
                              the outputs (at most 1e-6 for the exact methods, which are checked).

Every column is a float64, so every part of a job (and Spark's output) has the same schema.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from shipyard.attribution.base import Attributions
from shipyard.core.contract import example_row
from shipyard.explanations.explaining import Explanation, explain_rows
from shipyard.registry.loaded import LoadedModel, Scored, passed

__all__ = ["SHAP_PREFIX", "explain_batch", "explain_columns", "explain_names", "explained_outputs", "ready"]

SHAP_PREFIX = "shap_"


def ready(loaded: LoadedModel, method: str) -> None:
    """Build the version's explainer for `method` now, so a model that cannot have it fails before
    a job is recorded.

    Raises:
        UnsupportedExplanationError: the model cannot have `method`; the message names what it can.
    """
    loaded.explainer(method)


def explain_batch(loaded: LoadedModel, data: Any, method: str) -> tuple[Scored, Attributions | None]:
    """Score `data` with the quarantine policy and explain the rows predicted.

    Raises:
        ExplanationError: an exact method did not add up on some row.
    """
    explanation: Explanation = explain_rows(loaded, data, method=method, accept=passed)
    return explanation.scored, explanation.attributions


def explained_outputs(loaded: LoadedModel, method: str) -> tuple[str, ...]:
    """The outputs `method` explains for this version (learned once, from the contract's example
    row), which name the columns of a part with no scored row too."""
    key = f"batch:explained-outputs:{method}"
    if key not in loaded.cache:
        _, attributions = explain_batch(loaded, [example_row(loaded.contract)], method)
        assert attributions is not None  # the example row passes its own contract
        loaded.cache[key] = attributions.outputs
    outputs: tuple[str, ...] = loaded.cache[key]
    return outputs


def explain_names(features: tuple[str, ...], outputs: tuple[str, ...]) -> list[str]:
    """The explanation's column names, in the order they are written."""
    if len(outputs) == 1:
        names = [f"{SHAP_PREFIX}{f}" for f in features] + [f"{SHAP_PREFIX}base"]
    else:
        names = [f"{SHAP_PREFIX}{o}_{f}" for o in outputs for f in features]
        names += [f"{SHAP_PREFIX}base_{o}" for o in outputs]
    return [*names, f"{SHAP_PREFIX}additivity_error"]


def explain_columns(
    attributions: Attributions | None, *, features: tuple[str, ...], outputs: tuple[str, ...], rows: int
) -> dict[str, pa.Array]:
    """The explanation's columns for `rows` scored rows; NaN throughout without `attributions`
    (a part with no scored row, or the probe of Spark's output schema)."""
    names = explain_names(features, outputs)
    if attributions is None:
        nan = pa.array(np.full(rows, np.nan))
        return dict.fromkeys(names, nan)
    values, base = attributions.values, attributions.base
    column = [attributions.features.index(f) for f in features]
    output = [attributions.outputs.index(o) for o in outputs]
    arrays = [values[:, j, k] for k in output for j in column]
    arrays += [base[:, k] for k in output]
    arrays.append(attributions.additivity)
    return {
        name: pa.array(np.ascontiguousarray(a, dtype=np.float64))
        for name, a in zip(names, arrays, strict=True)
    }
