"""An explainer of contract features built from a pipeline's front and an engine that explains
its final estimator on the estimator's own columns.

Each column's share goes to the contract feature it comes from; a feature's share is the sum of
its columns' (a one-hot feature's categories, an imputed value and its missing indicator). When
every step before the estimator is column-wise (what `front_of` checks), the model is a sum of
functions of one contract feature each wherever the estimator is additive in its columns, so
for a linear estimator the sums are exactly the contract features' Shapley values; they always
add up to the model's output, as the columns' did.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.attribution.base import (
    Attributions,
    ColumnExplainer,
    Floats,
    Space,
    additivity_error,
)
from shipyard.attribution.pipelines import Front
from shipyard.core.batch import Batch
from shipyard.errors import ExplanationError

__all__ = ["EXACT_METHODS", "Mapped"]

EXACT_METHODS = frozenset({"linear", "tree_shap", "exact", "xgboost_contribs", "lightgbm_contribs"})
"""Column engines whose values add up exactly: their mapped explanations are checked."""


class Mapped:
    """Explains contract features through a front and a column engine (an `Explainer`).

    Args:
        front: the model's front (`front_of`).
        engine: explains `front.estimator` on `front.columns`.
        names: the contract features, in the order of every batch explained.

    Raises:
        ExplanationError: the front maps a column to a feature outside `names`.
    """

    def __init__(self, front: Front, engine: ColumnExplainer, *, names: tuple[str, ...]) -> None:
        if any(not 0 <= f < len(names) for f in front.feature_of):
            raise ExplanationError(
                f"the model's front maps its columns to features {sorted(set(front.feature_of))}; "
                f"expected positions among the contract's {len(names)} features {list(names)}"
            )
        self.front = front
        self.engine = engine
        self.names = names
        # (columns, features): 1 where a column comes from a feature; a product sums the shares.
        self._sums = np.zeros((len(front.columns), len(names)), dtype=np.float64)
        self._sums[np.arange(len(front.columns)), np.asarray(front.feature_of, dtype=np.intp)] = 1.0
        self._mapping = front.mapping(names)

    @property
    def method(self) -> str:
        """The engine's method."""
        return self.engine.method

    @property
    def space(self) -> Space:
        """The engine's output space."""
        return self.engine.space

    @property
    def exact(self) -> bool:
        """The engine's values add up exactly (checked on every explanation)."""
        return self.engine.method in EXACT_METHODS

    def explain(self, batch: Batch) -> Attributions:
        """Explain every row of `batch` (contract features, validated, in the contract's order).

        Raises:
            ExplanationError: the front's transform is not as wide as its columns, or an exact
                engine's values do not add up on some row.
        """
        outputs = self.engine.outputs
        if batch.n_rows == 0:
            # scikit-learn refuses to transform zero rows; there is nothing to attribute.
            empty = np.zeros((0, len(outputs)), dtype=np.float64)
            values = np.zeros((0, len(self.names), len(outputs)), dtype=np.float64)
            return self._answer(values, empty, empty)
        x: Any = self.front.transform(batch)
        shares = np.asarray(self.engine.attribute(x), dtype=np.float64)
        expected = (batch.n_rows, len(self.front.columns), len(outputs))
        if shares.shape != expected:
            raise ExplanationError(
                f"the {self.method} engine gave attributions of shape {shares.shape} for the "
                f"model's columns; expected {expected} (rows, the estimator's columns "
                f"{list(self.front.columns)[:5]}..., outputs {list(outputs)})"
            )
        # (rows, outputs, columns) @ (columns, features), one matrix product per row.
        values = np.ascontiguousarray((shares.transpose(0, 2, 1) @ self._sums).transpose(0, 2, 1))
        base = np.broadcast_to(np.asarray(self.engine.base(), dtype=np.float64), (batch.n_rows, len(outputs)))
        output = np.asarray(self.engine.output(x), dtype=np.float64).reshape(batch.n_rows, len(outputs))
        return self._answer(values, base.copy(), output).checked("the model's pipeline")

    def _answer(self, values: Floats, base: Floats, output: Floats) -> Attributions:
        return Attributions(
            values=values,
            base=base,
            output=output,
            features=self.names,
            outputs=self.engine.outputs,
            space=self.engine.space,
            method=self.engine.method,
            exact=self.exact,
            additivity=additivity_error(values, base, output),
            mapping=self._mapping,
        )
