"""Model-agnostic Shapley values of any predictor: exact over every coalition, or sampled.

The model is only called (`Predictor.predict` on batches of contract features), so any flavor
and any feature types work: a coalition's synthetic rows take the features in it from the row and
the rest from a background sample (interventional Shapley values, `shapley.py`), strings, None
and categories mixed as they are. 'exact' enumerates every coalition (up to 12 features) and
predicts many rows' coalitions in each call; 'permutation' samples orders (`sampling.py`) for any
number of features and reports its standard error per row. A scikit-learn MLP (bare or at the end
of a column-wise pipeline) gets the same exact values from a fused forward pass (`perceptron.py`).
"""

from __future__ import annotations

import functools
from dataclasses import KW_ONLY, dataclass
from typing import Any

import numpy as np

from shipyard.attribution.base import Attributions, Floats, Space, additivity_error
from shipyard.attribution.model_output import ModelOutput
from shipyard.attribution.perceptron import mlp_oracle
from shipyard.attribution.sampling import PermutationShapley, default_permutations
from shipyard.attribution.shapley import MAX_EXACT_FEATURES, Columns, ExactShapley, Oracle, coalition_values
from shipyard.core.batch import Batch
from shipyard.errors import InputError, UnsupportedExplanationError
from shipyard.flavors.base import Predictor

__all__ = ["AGNOSTIC_METHODS", "AgnosticExplainer", "agnostic_method"]

AGNOSTIC_METHODS = ("exact", "permutation")


def agnostic_method(n_features: int) -> str:
    """The model-agnostic method for a model of `n_features`: 'exact' up to 12, else 'permutation'."""
    return "exact" if n_features <= MAX_EXACT_FEATURES else "permutation"


@dataclass(frozen=True)
class AgnosticExplainer:
    """Interventional Shapley values of any predictor against a background sample.

    Args:
        predictor: the loaded model.
        names: the contract features, in the order the predictor takes them.
        classes: a classifier's class labels (one output each, in 'probability' space), or None
            for a regressor (one output, 'value', in 'raw' space).
        background: a sample of the version's training data, drawn by the caller (seeded).
        method: 'exact' (every coalition, <= 12 features), 'permutation' (sampled) or 'auto'.
        seed: seeds the permutation orders and the background subsample.
        permutations: how many orders 'permutation' walks (even, >= 4); None: `budget`'s worth.
        budget: model rows per explained row for 'permutation' (default 2,000 per feature).
        background_rows: 'permutation' averages over at most this many background rows (a seeded
            subsample); 'exact' uses the whole background.
        chunk_rows: the most synthetic rows predicted in one call of the model (65,536: on the
            benchmark MLP, 2x faster than 262,144, whose hidden activations leave the cache).
        fused: use the exact fused forward pass of a scikit-learn MLP when the model is one.

    Raises:
        UnsupportedExplanationError: 'exact' over more than 12 features; an unknown method.
        InputError: no features, an empty background, or a feature missing from it.
    """

    predictor: Predictor
    _: KW_ONLY
    names: tuple[str, ...]
    classes: tuple[Any, ...] | None
    background: Batch
    method: str = "exact"
    seed: int = 0
    permutations: int | None = None
    budget: int | None = None
    background_rows: int = 100
    chunk_rows: int = 65_536
    fused: bool = True

    def __post_init__(self) -> None:
        d = len(self.names)
        method = agnostic_method(d) if self.method == "auto" else self.method
        object.__setattr__(self, "method", method)
        if method not in AGNOSTIC_METHODS:
            raise UnsupportedExplanationError(
                f"the model-agnostic explainer has no method {method!r}; expected one of "
                f"{', '.join(map(repr, ('auto', *AGNOSTIC_METHODS)))}"
            )
        if d == 0:
            raise InputError("a model-agnostic explanation needs at least one feature; got none")
        if method == "exact" and d > MAX_EXACT_FEATURES:
            raise UnsupportedExplanationError(
                f"exact Shapley values enumerate every coalition of the features and are computed "
                f"for at most {MAX_EXACT_FEATURES} features; this model has {d} (2**{d} "
                "coalitions). Use method='permutation' (sampled, with its error reported)"
            )
        missing = [n for n in self.names if n not in self.background.columns]
        if missing:
            raise InputError(
                f"the background sample has no feature {missing[0]!r}; expected the contract's "
                f"features {list(self.names)}"
            )
        if self.background.n_rows == 0:
            raise InputError("the background sample has no rows; draw at least one training row")

    @property
    def space(self) -> Space:
        """'probability' for a classifier, 'raw' for a regressor."""
        return self._output().space

    @property
    def model_rows_per_row(self) -> int:
        """About how many rows the model predicts to explain one row (what a request costs)."""
        d = len(self.names)
        if self.method == "exact":
            return int((2**d) * self.background.n_rows)
        m = min(self.background.n_rows, self.background_rows)
        permutations = self.permutations or default_permutations(d, m, self.budget)
        return int(permutations * max(1, d - 1) * m)

    def explain(self, batch: Batch) -> Attributions:
        """Explain every row of `batch` (contract features, validated).

        Raises:
            UnsupportedExplanationError: a classifier without probabilities.
            ExplanationError: the exact values do not add up on some row.
        """
        output = self._output()
        f_x = output.of_batch(batch)
        rows: Columns = {n: batch.columns[n] for n in self.names}
        d, k = len(self.names), len(output.outputs)
        if batch.n_rows == 0:
            empty = np.zeros((0, d, k))
            return self._answer(output, empty, np.zeros((0, k)), f_x, None)
        if self.method == "exact":
            background = self._columns(self.background)
            engine = ExactShapley(
                output, background, self.names, self.chunk_rows, self._oracle(output, background)
            )
            phi, base = engine.values_of_rows(rows)
            return self._answer(output, phi, base, f_x, None).checked(f"{batch.n_rows} rows")
        background = self._columns(self._subsample())
        permutations = self.permutations or default_permutations(
            d, len(background[self.names[0]]), self.budget
        )
        sampler = PermutationShapley(self._oracle(output, background), self.names, permutations, self.seed)
        phi, base, error = sampler.values_of_rows(rows)
        return self._answer(output, phi, base, f_x, error)

    def _output(self) -> ModelOutput:
        return ModelOutput(self.predictor, self.names, self.classes, self.method)

    def _columns(self, batch: Batch) -> Columns:
        return {n: batch.columns[n] for n in self.names}

    def _subsample(self) -> Batch:
        """The background, or a seeded sample of `background_rows` of it (kept in order)."""
        m = self.background.n_rows
        if m <= self.background_rows:
            return self.background
        rng = np.random.default_rng(self.seed)
        return self.background.take(np.sort(rng.choice(m, self.background_rows, replace=False)))

    def _oracle(self, output: ModelOutput, background: Columns) -> Oracle:
        """The fused MLP pass when the model allows it, else mixing rows and calling the model."""
        mixing = functools.partial(
            coalition_values, output, background, self.names, chunk_rows=self.chunk_rows
        )
        fused = (
            mlp_oracle(self.predictor, self.names, self.classes, background, fallback=mixing)
            if self.fused
            else None
        )
        return mixing if fused is None else fused

    def _answer(
        self, output: ModelOutput, phi: Floats, base: Floats, f_x: Floats, error: Floats | None
    ) -> Attributions:
        return Attributions(
            values=phi,
            base=base,
            output=f_x,
            features=self.names,
            outputs=output.outputs,
            space=output.space,
            method=self.method,
            exact=self.method == "exact",
            additivity=additivity_error(phi, base, f_x),
            error=error,
        )
