"""LIME for tabular rows: a weighted linear model fitted around each row, with no dependency on
the `lime` package.

As lime's tabular explainer does with its default quartile discretizer, each explained row gets
`samples` perturbed neighbours (the first is the row itself); every feature of a neighbour is
drawn from the background's distribution of that feature, independently and seeded. A numeric
feature's value is a background value (so its quartile bin has the background's frequency); its
interpretable representation is 1 when that value falls in the row's quartile bin of the
background (missing values form a bin of their own). A categorical feature (strings, None,
booleans) takes a background category; its representation is 1 when it equals the row's.
Neighbours are weighted by an exponential kernel on their distance from the row in that binary
space, `sqrt(exp(-dist**2 / width**2))` with width `0.75 * sqrt(d)`, and a ridge regression
(alpha 1) of the model's output on the representation is fitted per row and output.

A feature's value is its coefficient times (the row's representation, 1, minus the neighbours'
weighted mean representation); the base is the weighted mean output, so the values plus the base
equal the local model's prediction at the row. That is not the model's output: the gap is
reported per row as `error` and `additivity` (LIME is not exact).
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.attribution.base import Attributions, Floats, Space, additivity_error
from shipyard.attribution.model_output import ModelOutput
from shipyard.core.batch import Batch
from shipyard.errors import InputError, UnsupportedExplanationError
from shipyard.flavors.base import Predictor

__all__ = ["LimeExplainer"]

_NUMERIC = "iuf"


@dataclass(frozen=True)
class LimeExplainer:
    """Local linear surrogate attributions (LIME) of any predictor.

    Args:
        predictor: the loaded model.
        names: the contract features, in the order the predictor takes them.
        classes: a classifier's class labels, or None for a regressor.
        background: a sample of the version's training data (the perturbation distribution).
        seed: seeds the perturbations; every row uses the same seed, so a row's explanation does
            not depend on the other rows explained with it.
        samples: neighbours per row, the row itself included (>= 2).
        kernel_width: the exponential kernel's width; None is 0.75 * sqrt(features), lime's.
        alpha: the ridge penalty (lime's default 1.0).
        chunk_rows: the most synthetic rows predicted in one call of the model.

    Raises:
        InputError: no features, fewer than 2 samples, an empty background or a feature missing.
    """

    predictor: Predictor
    _: KW_ONLY
    names: tuple[str, ...]
    classes: tuple[Any, ...] | None
    background: Batch
    seed: int = 0
    samples: int = 1000
    kernel_width: float | None = None
    alpha: float = 1.0
    chunk_rows: int = 262_144

    def __post_init__(self) -> None:
        if not self.names:
            raise InputError("a LIME explanation needs at least one feature; got none")
        if self.samples < 2:
            raise InputError(
                f"LIME needs at least 2 samples per row (the row and a neighbour); got {self.samples}"
            )
        missing = [n for n in self.names if n not in self.background.columns]
        if missing:
            raise InputError(
                f"the background sample has no feature {missing[0]!r}; expected {list(self.names)}"
            )
        if self.background.n_rows == 0:
            raise InputError("the background sample has no rows; draw at least one training row")

    @property
    def method(self) -> str:
        """'lime'."""
        return "lime"

    @property
    def space(self) -> Space:
        """'probability' for a classifier, 'raw' for a regressor."""
        return self._output().space

    @property
    def model_rows_per_row(self) -> int:
        """How many rows the model predicts to explain one row: its neighbours."""
        return int(self.samples)

    def explain(self, batch: Batch) -> Attributions:
        """Explain every row of `batch` (contract features, validated).

        Raises:
            UnsupportedExplanationError: a classifier whose predictions carry no probabilities.
        """
        output = self._output()
        try:
            f_x = output.of_batch(batch)
        except UnsupportedExplanationError:
            raise UnsupportedExplanationError(
                "LIME fits each class's probability, but this classifier's predictions carry no "
                "probabilities (its model has no predict_proba); the model-agnostic methods "
                "('lime', 'exact', 'permutation') all need them: register the model with "
                "probabilities (e.g. CalibratedClassifierCV(SVC(), ensemble=False); "
                "SVC(probability=True) before scikit-learn 1.11), then ask for 'exact' or "
                "'permutation' Shapley values, or for 'lime'"
            ) from None
        n, d, k = batch.n_rows, len(self.names), f_x.shape[1]
        values = np.zeros((n, d, k))
        base = np.zeros((n, k))
        if n:
            picks = self._picks()
            neighbours, same = self._neighbours(batch, picks)
            y = self._predict(output, neighbours).reshape(n, self.samples, k)
            width = self.kernel_width or 0.75 * np.sqrt(d)
            for r in range(n):
                z = same[r].astype(np.float64)  # (samples, d)
                distance2 = d - z.sum(axis=1)  # squared euclidean distance to all ones
                weight = np.sqrt(np.exp(-distance2 / width**2))
                values[r], base[r] = self._fit(z, y[r], weight)
        local = values.sum(axis=1) + base
        gap = np.abs(local - f_x).max(axis=1) if n else np.zeros(0)
        return Attributions(
            values=values,
            base=base,
            output=f_x,
            features=self.names,
            outputs=output.outputs,
            space=output.space,
            method="lime",
            exact=False,
            additivity=additivity_error(values, base, f_x),
            error=gap,
        )

    def _output(self) -> ModelOutput:
        return ModelOutput(self.predictor, self.names, self.classes, "lime")

    def _picks(self) -> npt.NDArray[np.intp]:
        """(samples - 1, d): which background row each neighbour takes each feature from."""
        rng = np.random.default_rng(self.seed)
        return rng.integers(0, self.background.n_rows, size=(self.samples - 1, len(self.names)))

    def _neighbours(
        self, batch: Batch, picks: npt.NDArray[np.intp]
    ) -> tuple[dict[str, npt.NDArray[Any]], npt.NDArray[np.bool_]]:
        """Every row's neighbours as columns (rows x samples long) and their representation."""
        n, s = batch.n_rows, self.samples
        columns: dict[str, npt.NDArray[Any]] = {}
        same = np.empty((n, s, len(self.names)), dtype=bool)
        for i, name in enumerate(self.names):
            drawn = np.asarray(self.background.columns[name])[picks[:, i]]
            mine = np.asarray(batch.columns[name])
            block = np.concatenate(
                [np.broadcast_to(mine[:, None], (n, 1)), np.broadcast_to(drawn, (n, s - 1))], axis=1
            )
            columns[name] = block.ravel()
            same[:, :, i] = self._same(name, mine, block)
        return columns, same

    def _same(self, name: str, mine: npt.NDArray[Any], block: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        """(rows, samples): the neighbour's value of the feature is in the row's bin or category."""
        reference = np.asarray(self.background.columns[name])
        if reference.dtype.kind in _NUMERIC and mine.dtype.kind in _NUMERIC:
            edges = _quartiles(reference.astype(np.float64))
            mine_bin = _bin(mine.astype(np.float64), edges)[:, None]
            return np.asarray(mine_bin == _bin(block.astype(np.float64), edges), dtype=bool)
        keys = np.frompyfunc(_key, 1, 1)
        return np.asarray(keys(block) == keys(mine)[:, None], dtype=bool)

    def _predict(self, output: ModelOutput, columns: dict[str, npt.NDArray[Any]]) -> Floats:
        total = len(columns[self.names[0]])
        parts = [
            output({n: c[start : start + self.chunk_rows] for n, c in columns.items()})
            for start in range(0, total, self.chunk_rows)
        ]
        return np.concatenate(parts)

    def _fit(self, z: Floats, y: Floats, weight: Floats) -> tuple[Floats, Floats]:
        """Weighted ridge of y (samples, k) on z (samples, d): (values (d, k), base (k,))."""
        w = weight / weight.sum()
        z_mean = w @ z
        y_mean = w @ y
        zc = z - z_mean
        gram = (zc * w[:, None]).T @ zc
        # lime's Ridge(alpha) on sample_weight: the penalty against the unnormalised weights.
        coef = np.linalg.solve(
            gram * weight.sum() + self.alpha * np.eye(z.shape[1]), (zc * weight[:, None]).T @ (y - y_mean)
        )
        values = coef * (1.0 - z_mean)[:, None]
        return values, y_mean


def _quartiles(values: Floats) -> Floats:
    """The background's distinct quartile edges (missing values ignored)."""
    present = values[~np.isnan(values)]
    if not len(present):
        return np.zeros(0)
    return np.unique(np.quantile(present, [0.25, 0.5, 0.75]))


def _bin(values: Floats, edges: Floats) -> npt.NDArray[np.intp]:
    """Each value's quartile bin; a missing value gets a bin of its own (-1)."""
    bins = np.searchsorted(edges, values, side="left").astype(np.intp)
    bins[np.isnan(values)] = -1
    return bins


def _key(value: Any) -> Any:
    """A category as compared: NaN and None are one missing category."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value
