"""The evaluation's explanations: the version's stored importance, and the attributions of a
seeded sample of the holdout for the report's SHAP summary plot.

A sample of up to `EXPLAIN_ROWS` rows the contract accepts is drawn (seeded by the evaluation's
seed), scored through the one scoring step with the quarantine policy and explained by the version's
explainer (`LoadedModel.explainer`, `shipyard.attribution.choose`), on the background
stored at registration, or, for a version without one, on a background drawn from the holdout
(pii values replaced as at registration). The model-agnostic methods explain fewer rows, within
`EXPLAIN_BUDGET` model rows. What is kept is JSON-safe (`Evaluation.explanations`), so the report
renders from stored data:

    registration   the stored importance, its method, or why there is none
    method, space, exact, output, rows, seed, background, additivity (the largest gap)
    importance     mean |attribution| per feature on the sample, the largest first
    features       per feature, in that order (the first `PLOTTED_FEATURES`): its attributions
                   (one per sampled row) and how each dot is coloured: 'numeric' (the value's
                   rank share in [0, 1], low to high), 'categorical' (an index into
                   `categories`, the most frequent first, the rest as 'other'), 'hidden' (a pii
                   feature: no values kept)
    error          why the rows could not be explained (the rest is then missing)

Which output is shown: the only one (a regressor's, a binary margin's); of two (a binary
classifier's probabilities), the second class's; of more, each row's predicted class's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shipyard.attribution.base import Attributions
from shipyard.attribution.summary import affordable_rows, draw_background
from shipyard.core.attribution_charts import CATEGORY_COLORS
from shipyard.core.batch import Batch
from shipyard.core.jsonsafe import json_safe
from shipyard.errors import ShipyardError
from shipyard.registry.loaded import passed

if TYPE_CHECKING:
    from shipyard.registry.loaded import LoadedModel

__all__ = [
    "EXPLAIN_BUDGET",
    "EXPLAIN_ROWS",
    "PLOTTED_FEATURES",
    "holdout_explanations",
    "registration_summary",
    "top_features",
]

EXPLAIN_ROWS = 300
"""The most holdout rows the summary plot shows."""

EXPLAIN_BUDGET = 100_000
"""The most synthetic rows a model-agnostic explanation of the sample may predict."""

PLOTTED_FEATURES = 20
"""The most features whose dots are kept (the most important ones): the rest are in `importance`."""

_NAMED_CATEGORIES = len(CATEGORY_COLORS) - 1


def registration_summary(loaded: LoadedModel) -> dict[str, Any]:
    """The importance stored with the version at registration, or why there is none."""
    stored = dict(loaded.version.explanation or {})
    why = stored.get("importance_error")
    if not stored:
        why = "the version was registered without training data (or before importances were kept)"
    return {"importance": loaded.version.importance, "method": stored.get("method"), "error": why}


def holdout_explanations(
    loaded: LoadedModel, batch: Batch, *, seed: int, rows: int = EXPLAIN_ROWS
) -> dict[str, Any]:
    """The stored importance and the attributions of a seeded sample of `batch`'s accepted rows.

    A model that cannot be explained still gets its evaluation: the result says why ('error').
    """
    out: dict[str, Any] = {"registration": registration_summary(loaded)}
    try:
        out |= _explain(loaded, batch, seed=seed, rows=rows)
    except ShipyardError as exc:
        out["error"] = str(exc)
    except Exception as exc:  # the metrics stand without the explanations; the report says why
        out["error"] = f"{type(exc).__name__}: {exc}"
    cleaned: dict[str, Any] = json_safe(out)
    return cleaned


def top_features(explanations: dict[str, Any] | Any, k: int = 3) -> list[str]:
    """The `k` features with the largest mean |attribution| on the holdout sample (or, without
    it, in the stored importance)."""
    found = (explanations or {}).get("importance") or ((explanations or {}).get("registration") or {}).get(
        "importance"
    )
    if not found:
        return []
    return [name for name, _ in sorted(found.items(), key=lambda kv: -float(kv[1]))[:k]]


def _explain(loaded: LoadedModel, batch: Batch, *, seed: int, rows: int) -> dict[str, Any]:
    contract = loaded.contract
    accepted = loaded.validate(batch).accepted_rows
    if not len(accepted):
        return {"error": "no row of the data passed the contract"}
    background = loaded.background
    source = "registration"
    if background is None:
        source = "holdout"
        background = draw_background(contract, batch.take(accepted))
    explainer = loaded.explainer(background=None if source == "registration" else background)
    n = affordable_rows(
        explainer.method, features=len(contract.names), background=background.n_rows,
        rows=min(rows, len(accepted)), budget=EXPLAIN_BUDGET,
    )  # fmt: skip
    picked = np.sort(np.random.default_rng(seed).choice(accepted, n, replace=False))
    # The one explain step (every picked row passed the contract, so quarantine keeps them all).
    explained = loaded.explain(
        batch.take(picked), accept=passed, background=None if source == "registration" else background
    )
    scored, a = explained.scored, explained.attributions
    if scored.predictions is None or a is None:
        return {"error": "no sampled row passed the contract"}
    chosen, output = _shown_output(a, scored.predictions.values)
    values = a.values[np.arange(a.n_rows), :, chosen]  # (rows, features)
    means = np.abs(values).mean(axis=0)
    order = sorted(range(len(a.features)), key=lambda j: (-float(means[j]), j))
    pii = set(contract.pii_masks)
    features = [
        {"name": a.features[j], "mean_abs": float(means[j]), "attributions": _rounded(values[:, j])}
        | _coloring(scored.batch.columns[a.features[j]], hidden=a.features[j] in pii)
        for j in order[:PLOTTED_FEATURES]
    ]
    return {
        "method": a.method,
        "space": a.space,
        "exact": a.exact,
        "output": output,
        "rows": a.n_rows,
        "seed": seed,
        "background": source,
        "additivity": float(a.additivity.max()) if a.n_rows else 0.0,
        "importance": {a.features[j]: float(means[j]) for j in order},
        "features": features,
    }


def _shown_output(a: Attributions, predicted: Any) -> tuple[Any, str]:
    """Per row, the output shown, and its name."""
    k = len(a.outputs)
    if k == 1:
        return np.zeros(a.n_rows, dtype=np.intp), a.outputs[0]
    if k == 2:
        return np.ones(a.n_rows, dtype=np.intp), a.outputs[1]
    index = {name: i for i, name in enumerate(a.outputs)}
    chosen = np.array([index.get(str(p), k - 1) for p in np.asarray(predicted).tolist()], dtype=np.intp)
    return chosen, "the predicted class"


def _rounded(values: Any) -> list[float]:
    return [float(f"{v:.6g}") for v in np.asarray(values, dtype=np.float64).tolist()]


def _coloring(column: Any, *, hidden: bool) -> dict[str, Any]:
    """How each dot of a feature is coloured (see the module's docstring)."""
    if hidden:
        return {"kind": "hidden", "colors": [None] * len(column)}
    values = pd.Series(np.asarray(column), copy=False)
    kind = np.asarray(column).dtype.kind
    if kind in "iuf":
        numbers = values.astype(np.float64)
        ranks = numbers.rank(method="average")
        spread = max(int(numbers.notna().sum()) - 1, 1)
        shares = ((ranks - 1) / spread).round(4)
        return {"kind": "numeric", "colors": [None if pd.isna(s) else float(s) for s in shares]}
    text = values.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    counts = text.value_counts()
    named = [str(c) for c in counts.index[:_NAMED_CATEGORIES]]
    categories = named + (["other"] if len(counts) > len(named) else [])
    code = {c: i for i, c in enumerate(named)}
    colors = [None if v is None else code.get(v, len(named)) for v in text.tolist()]
    return {"kind": "categorical", "categories": categories, "colors": colors}
