"""What a version keeps of its explanations from registration: a background sample of its
training data and its global importance (mean |attribution| per feature on a sample).

Both are computed once, when the version is registered, and stored with it
(`model_versions.explanation`): loading a version never recomputes them. The background is what
model-agnostic and linear explainers take expectations over; the importance weights the dataset
drift verdict and heads the evaluation report. The values of pii features are never kept: their
background column holds the contract's example value instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from shipyard.attribution.base import Attributions
from shipyard.attribution.choose import explainer_for
from shipyard.attribution.shapley import MAX_EXACT_FEATURES
from shipyard.core.batch import Batch
from shipyard.core.contract import Contract, example_row
from shipyard.core.jsonsafe import json_safe
from shipyard.errors import ShipyardError
from shipyard.flavors.base import Predictor, classes_of

__all__ = [
    "BACKGROUND_ROWS",
    "IMPORTANCE_ROWS",
    "MODEL_ROWS_BUDGET",
    "affordable_rows",
    "background_of",
    "draw_background",
    "for_contract",
    "importance",
    "summarize",
]

BACKGROUND_ROWS = 100
"""Rows of training data kept as the background sample (shap's advice: 50 to 100)."""

IMPORTANCE_ROWS = 200
"""Rows of training data the global importance is the mean over (fewer for costly methods)."""

MODEL_ROWS_BUDGET = 100_000
"""The most synthetic rows a model-agnostic importance may predict at registration."""

_SEED = 0


def _sample(batch: Batch, rows: int, seed: int) -> Batch:
    """A seeded sample of up to `rows` rows, in their original order."""
    if batch.n_rows <= rows:
        return batch
    picked = np.random.default_rng(seed).choice(batch.n_rows, rows, replace=False)
    return batch.take(np.sort(picked))


def _valid(contract: Contract, features: Batch) -> Batch:
    validation = contract.validate(features)
    return validation.batch if validation.ok else validation.batch.take(validation.accepted_rows)


def draw_background(contract: Contract, features: Batch, *, rows: int = BACKGROUND_ROWS) -> Batch:
    """A seeded sample of the training rows that pass the contract, pii features replaced by the
    contract's example value."""
    sample = _sample(_valid(contract, features), rows, _SEED)
    pii = set(contract.pii_masks)
    if not pii:
        return sample
    example = example_row(contract)
    columns = dict(sample.columns)
    for name in pii & set(columns):
        filler = np.empty(sample.n_rows, dtype=columns[name].dtype)
        filler[:] = example[name]
        columns[name] = filler
    return Batch(columns, sample.n_rows)


def affordable_rows(method: str, *, features: int, background: int, rows: int, budget: int) -> int:
    """How many of `rows` rows a method can explain within `budget` model rows: all of them for
    the model-specific methods (cheap), fewer for the model-agnostic ones, which predict about
    2^features (at most 2^MAX_EXACT_FEATURES) synthetic rows per background row for each."""
    if method not in ("exact", "permutation", "lime"):
        return rows
    per_row = (2 ** min(features, MAX_EXACT_FEATURES)) * max(background, 1)
    return int(max(1, min(rows, budget // per_row)))


def importance(attributions: Attributions) -> dict[str, float]:
    """Mean |attribution| per feature, over rows and outputs."""
    if attributions.n_rows == 0:
        return dict.fromkeys(attributions.features, 0.0)
    means = np.abs(attributions.values).mean(axis=(0, 2))
    return {name: float(v) for name, v in zip(attributions.features, means, strict=True)}


def summarize(
    predictor: Predictor, *, contract: Contract, meta: Mapping[str, Any], features: Batch
) -> dict[str, Any]:
    """The explanation summary stored with a new version.

    A model that cannot be explained still registers: the summary then says why
    (`importance_error`) instead of holding an importance.
    """
    background = draw_background(contract, features)
    summary: dict[str, Any] = {
        "background": {name: json_safe(col.tolist()) for name, col in background.columns.items()},
        "background_rows": background.n_rows,
        "seed": _SEED,
    }
    if background.n_rows == 0:
        summary["importance_error"] = "no training row passed the contract"
        return summary
    try:
        explainer = explainer_for(
            predictor,
            names=contract.names,
            classes=classes_of(meta),
            frame_input=bool(meta.get("frame_input", False)),
            background=background,
        )
        rows = affordable_rows(
            explainer.method,
            features=len(contract.names),
            background=background.n_rows,
            rows=IMPORTANCE_ROWS,
            budget=MODEL_ROWS_BUDGET,
        )
        sample = _sample(_valid(contract, features), rows, _SEED + 1)
        attributions = explainer.explain(sample)
    except ShipyardError as exc:
        summary["importance_error"] = str(exc)
        return summary
    except Exception as exc:  # a model no explainer can read still registers; the summary says why
        summary["importance_error"] = f"{type(exc).__name__}: {exc}"
        return summary
    summary |= {
        "importance": importance(attributions),
        "importance_rows": attributions.n_rows,
        "method": attributions.method,
        "space": attributions.space,
    }
    return summary


def background_of(contract: Contract, explanation: Mapping[str, Any] | None) -> Batch | None:
    """The stored background sample as a validated batch of the contract's features, or None."""
    if not explanation or not explanation.get("background"):
        return None
    stored = explanation["background"]
    if set(stored) != set(contract.names):
        return None
    return _valid(contract, Batch.from_columns({n: stored[n] for n in contract.names}))


def for_contract(explanation: Mapping[str, Any] | None, contract: Contract) -> dict[str, Any] | None:
    """The summary carried to a version with an edited contract: features it now marks pii lose
    their background values."""
    if not explanation:
        return None
    carried = dict(explanation)
    stored = dict(carried.get("background") or {})
    example = example_row(contract)
    for name in contract.pii_masks:
        if name in stored:
            stored[name] = [json_safe(example[name])] * len(stored[name])
    carried["background"] = stored
    return carried
