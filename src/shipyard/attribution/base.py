"""What every explainer answers (`Attributions`) and the two protocols explainers follow.

An `Explainer` explains rows of contract features (a `Batch` that passed the contract): one value
per row, contract feature and output, the base value, and the model's own output they add up to.
Model-specific engines (trees, linear models) explain the final estimator on its own input
columns (`ColumnExplainer`); `shipyard.attribution.mapped` puts a pipeline's front in front of
them and sums the columns back onto the contract's features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from shipyard.core.batch import Batch
from shipyard.errors import ExplanationError

__all__ = [
    "EXACT_TOLERANCE",
    "METHODS",
    "SINGLE_PRECISION_METHODS",
    "SPACES",
    "Attributions",
    "ColumnExplainer",
    "Explainer",
    "Floats",
    "Space",
    "additivity_error",
    "tolerance",
]

Floats = npt.NDArray[np.float64]
Space = Literal["probability", "log_odds", "raw"]
SPACES: tuple[Space, ...] = ("probability", "log_odds", "raw")
"""probability: predict_proba; log_odds: a classifier's margin before the sigmoid or softmax
(decision_function, a booster's raw score); raw: a regressor's prediction."""

METHODS = ("auto", "tree_shap", "linear", "exact", "permutation", "lime")
"""Methods a caller may ask for; 'auto' picks the exact one the model allows."""

EXACT_TOLERANCE = 1e-6
"""The most |sum(attributions) + base - f(x)| an exact method may leave on any row and output."""

SINGLE_PRECISION_METHODS = frozenset({"xgboost_contribs"})
"""Exact methods of frameworks that compute in float32 (XGBoost): f(x) itself is known only to
float32's precision (about 6e-8 of its size), so their tolerance is EXACT_TOLERANCE relative to
max(1, |f(x)|) instead of absolute."""


def tolerance(method: str, output: Floats) -> Floats:
    """Per row, the most additivity error an exact method may leave."""
    if method in SINGLE_PRECISION_METHODS and output.size:
        return np.asarray(EXACT_TOLERANCE * np.maximum(1.0, np.abs(output).max(axis=1)), dtype=np.float64)
    return np.full(output.shape[0], EXACT_TOLERANCE, dtype=np.float64)


def additivity_error(values: Floats, base: Floats, output: Floats) -> Floats:
    """Per row, the largest |sum over features + base - output| over the outputs.

    Args:
        values: (rows, features, outputs); base: (rows, outputs); output: (rows, outputs).
    """
    if values.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    gap = np.abs(values.sum(axis=1) + base - output)
    return np.asarray(gap.max(axis=1), dtype=np.float64)


@dataclass(frozen=True)
class Attributions:
    """One explanation of some rows.

    Attributes:
        values: (rows, features, outputs): each feature's share of each output.
        base: (rows, outputs): the expected output the shares start from (the same on every row
            for SHAP methods; LIME's local intercept per row).
        output: (rows, outputs): the model's own output f(x) in `space`, computed by the model.
        features: the contract features, in the order of `values`' second axis.
        outputs: what each output is: a class label (as text) or 'value' for a regressor.
        space: the output space the values explain ('probability', 'log_odds' or 'raw').
        method: 'tree_shap', 'linear', 'exact', 'permutation', 'lime', or a framework's own
            ('xgboost_contribs', 'lightgbm_contribs').
        exact: the method is exact: `additivity` is <= EXACT_TOLERANCE on every row, checked.
        additivity: (rows,): |sum(values) + base - output|, largest over the outputs.
        error: (rows,) for an estimate (sampling, LIME): its estimated error per row, largest over
            features and outputs; None for exact methods.
        mapping: each contract feature's model columns (a one-hot feature has one per category).
    """

    values: Floats
    base: Floats
    output: Floats
    features: tuple[str, ...]
    outputs: tuple[str, ...]
    space: Space
    method: str
    exact: bool
    additivity: Floats
    error: Floats | None = None
    mapping: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        """How many rows are explained."""
        return int(self.values.shape[0])

    def checked(self, where: str = "") -> Attributions:
        """This explanation, after checking an exact method's additivity on every row.

        Raises:
            ExplanationError: an exact method misses `EXACT_TOLERANCE` on some row.
        """
        if self.exact and self.n_rows:
            allowed = tolerance(self.method, self.output)
            excess = self.additivity / allowed
            worst = int(np.argmax(np.where(np.isnan(excess), np.inf, excess)))
            gap = float(self.additivity[worst])
            if not gap <= allowed[worst]:
                place = f" of {where}" if where else ""
                raise ExplanationError(
                    f"the {self.method} attributions{place} do not add up: on row {worst}, "
                    f"sum(attributions) + base differs from the model's {self.space} output by "
                    f"{gap:.3g} (at most {allowed[worst]:.3g} is allowed); nothing was answered"
                )
        return self

    def take(self, rows: npt.NDArray[np.intp]) -> Attributions:
        """The explanation of some of the rows (by index)."""
        return Attributions(
            self.values[rows],
            self.base[rows],
            self.output[rows],
            self.features,
            self.outputs,
            self.space,
            self.method,
            self.exact,
            self.additivity[rows],
            None if self.error is None else self.error[rows],
            self.mapping,
        )

    def top(self, row: int, k: int = 5, output: int = -1) -> list[tuple[str, float]]:
        """The k features with the largest |attribution| of one row and output, largest first;
        ties keep the contract's order."""
        shares = self.values[row, :, output]
        order = sorted(range(len(self.features)), key=lambda j: (-abs(float(shares[j])), j))
        return [(self.features[j], float(shares[j])) for j in order[:k]]


class Explainer(Protocol):
    """Explains rows of contract features."""

    @property
    def method(self) -> str:
        """The method's name, as `Attributions.method` gives it."""
        ...

    @property
    def space(self) -> Space:
        """The output space its values are in."""
        ...

    def explain(self, batch: Batch) -> Attributions:
        """Explain every row of `batch` (contract features, validated, in the contract's order).

        Raises:
            ExplanationError: an exact method did not add up on some row.
        """
        ...


class ColumnExplainer(Protocol):
    """Explains a fitted estimator on its own input columns (what it is given, after any
    pipeline steps before it)."""

    @property
    def method(self) -> str:
        """The method's name."""
        ...

    @property
    def space(self) -> Space:
        """The output space its values are in."""
        ...

    @property
    def outputs(self) -> tuple[str, ...]:
        """What each output is: a class label as text, or 'value'."""
        ...

    def base(self) -> Floats:
        """(outputs,): the expected output every row's values start from."""
        ...

    def attribute(self, x: Any) -> Floats:
        """(rows, columns, outputs): each input column's share of each output.

        Args:
            x: what the estimator's own predict takes (an array, or a DataFrame if it was
                fitted on one).
        """
        ...

    def output(self, x: Any) -> Floats:
        """(rows, outputs): the estimator's own output in `space` (computed by the estimator, not
        by adding up the values: it is what additivity is checked against)."""
        ...
