"""STAND-IN (replaced by the real engine when part-agnostic merges): exact Shapley values only."""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.attribution.base import Attributions, Space, additivity_error
from shipyard.attribution.shapley import MAX_EXACT_FEATURES, ExactShapley
from shipyard.core.batch import Batch
from shipyard.flavors.base import Predictor

__all__ = ["AgnosticExplainer", "agnostic_method"]


def agnostic_method(n_features: int) -> str:
    """'exact' up to MAX_EXACT_FEATURES features, else 'permutation'."""
    return "exact" if n_features <= MAX_EXACT_FEATURES else "permutation"


class AgnosticExplainer:
    """Exact interventional Shapley values against the background (stand-in)."""

    def __init__(
        self,
        predictor: Predictor,
        *,
        names: tuple[str, ...],
        classes: tuple[Any, ...] | None,
        background: Batch,
        method: str = "exact",
        seed: int = 0,
    ) -> None:
        self.predictor = predictor
        self.names = names
        self.classes = classes
        self.method = method
        self.space: Space = "probability" if classes is not None else "raw"
        self.outputs = tuple(str(c) for c in classes) if classes is not None else ("value",)
        self.exact = ExactShapley(self._f, background.columns, names)

    def _f(self, columns: Any) -> Any:
        n = len(next(iter(columns.values())))
        p = self.predictor.predict(Batch({k: np.asarray(columns[k]) for k in self.names}, n))
        return p.probabilities if self.classes is not None else np.asarray(p.values, dtype=np.float64)

    def explain(self, batch: Batch) -> Attributions:
        """Explain every row."""
        k = len(self.outputs)
        values = np.zeros((batch.n_rows, len(self.names), k))
        base = np.zeros((batch.n_rows, k))
        for r in range(batch.n_rows):
            phi, b = self.exact.values({n: batch.columns[n][r] for n in self.names})
            values[r], base[r] = phi, b
        out = np.asarray(self._f(batch.columns), dtype=np.float64).reshape(batch.n_rows, k)
        return Attributions(
            values,
            base,
            out,
            self.names,
            self.outputs,
            self.space,
            "exact",
            True,
            additivity_error(values, base, out),
        )
