"""Exact coalition values of scikit-learn MLPs by a fused forward pass.

An MLP's first layer is linear, so the pre-activation of a synthetic row (features in S from the
explained row x, the rest from a background row b) splits into a part from x's features in S and
a part from b's features outside S: `z = sum_{j in S} x_j W_j + sum_{j not in S} b_j W_j + c`.
The background's part depends on the coalition and b only, so it is computed once per call for
all rows; each row then costs one addition, the activation and the later (small) layers per
synthetic row, instead of building the rows, the pipeline's transform and the first layer's
product. It holds through a Pipeline whose earlier steps are column-wise (each output column
depends on one contract feature: scaling, one-hot encoding, imputing with fitted statistics):
which columns each feature owns is found by varying one feature at a time, and the split is
checked against the pipeline's own transform on the rows being explained before it is used; when
that check fails, or the model is anything else, the caller mixes rows and predicts as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.attribution.shapley import Columns, Oracle, all_coalitions
from shipyard.core.batch import Batch
from shipyard.flavors.base import Predictor

__all__ = ["FusedMLP", "mlp_oracle"]

Floats = npt.NDArray[np.float64]
_CHUNK = 1 << 16  # synthetic-row x hidden-unit floats per step (512 kB: stays in cache)
_CHECKS = 8  # random coalitions the split is checked on against the real transform


def mlp_oracle(
    predictor: Predictor,
    names: Sequence[str],
    classes: tuple[Any, ...] | None,
    background: Columns,
    *,
    fallback: Oracle,
) -> Oracle | None:
    """The fused exact oracle of a scikit-learn MLP (bare, or ending a column-wise Pipeline), or
    None when the model is not one or its front is not column-wise.

    Args:
        predictor: the loaded model (a `SklearnPredictor` for this to apply).
        names: the contract features, in order.
        classes: the explainer's classes (they must be the MLP's own, in its order).
        background: the background sample, one array per feature.
        fallback: the oracle that mixes rows and predicts, used when a call's rows fail the check.
    """
    from shipyard.flavors.sklearn import SklearnPredictor

    if not isinstance(predictor, SklearnPredictor):
        return None
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline

    model = predictor.model
    final = model[-1] if isinstance(model, Pipeline) else model
    front = model[:-1] if isinstance(model, Pipeline) else None
    if isinstance(final, MLPClassifier):
        own = tuple(str(c) for c in final.classes_)
        if not predictor.scores or classes is None or own != tuple(str(c) for c in classes):
            return None
        if getattr(final, "n_outputs_", 1) != 1 and final.out_activation_ != "softmax":
            return None  # multilabel
    elif not (isinstance(final, MLPRegressor) and classes is None and final.n_outputs_ == 1):
        return None

    def transform(columns: Columns) -> Floats:
        n = len(columns[names[0]])
        batch = Batch({name: columns[name] for name in names}, n)
        features: Any = batch.to_pandas() if predictor.frame_input else batch.to_numpy()
        if front is not None:
            features = front.transform(features)
        if hasattr(features, "toarray"):
            features = features.toarray()
        return np.asarray(features, dtype=np.float64)

    try:
        # A bare MLP takes the features as its columns; a pipeline's front is probed.
        owners = np.arange(len(names)) if front is None else _owners(transform, names, background)
    except (ValueError, TypeError):
        return None
    if owners is None:
        return None
    return FusedMLP(final, tuple(names), transform, owners, background, transform(background), fallback)


@dataclass(frozen=True)
class FusedMLP:
    """Coalition values of an MLP by the split first layer (see the module's docstring).

    Args:
        mlp: the fitted MLPClassifier or MLPRegressor.
        names: the contract features.
        transform: columns -> the MLP's input matrix.
        owners: for each input column, the feature it depends on (-1: none, a constant).
        raw: the background as contract features, one array per feature.
        background: the transformed background, (m, columns).
        fallback: used for a call whose rows the split does not reproduce.
    """

    mlp: Any
    names: tuple[str, ...]
    transform: Callable[[Columns], Floats]
    owners: npt.NDArray[np.intp]
    raw: Columns
    background: Floats
    fallback: Oracle

    def __call__(self, rows: Columns, coalitions: npt.NDArray[np.bool_]) -> Floats:
        """v: (rows, coalitions, outputs), exactly as mixing rows and predicting gives it."""
        x = self.transform(rows)
        if not self._splits(rows, x):
            return self.fallback(rows, coalitions)
        weights, intercepts = self.mlp.coefs_, self.mlp.intercepts_
        own_x = self._by_feature(x, weights[0])  # (n, d, h)
        own_b = self._by_feature(self.background, weights[0])  # (m, d, h)
        constant = self.background[0, self.owners < 0] @ weights[0][self.owners < 0] + intercepts[0]
        n, m, h = x.shape[0], self.background.shape[0], weights[0].shape[1]
        d = len(self.names)
        everything = own_b.sum(axis=1) + constant  # (m, h): every feature from the background
        taken = coalitions.astype(np.float64)
        step = max(1, _CHUNK // (m * h))
        every = _every_coalition(coalitions)
        if every:
            # Coalitions 0 .. 2**d - 1 in order: a chunk of 2**low of them shares its high bits,
            # and its low bits' background shares come from one table built by doubling.
            low = min(d, max(0, step.bit_length() - 1))
            step = 1 << low
            table = np.zeros((step, m, h), dtype=np.float64)
            for i in range(low):
                table[1 << i : 2 << i] = table[: 1 << i] + own_b[None, :, i]
        value = np.empty((n, len(coalitions), self._outputs()), dtype=np.float64)
        # One buffer reused for every step: fresh multi-megabyte arrays would fault in new pages.
        buffer = np.empty((step, m, h), dtype=np.float64)
        for start in range(0, len(coalitions), step):
            part = slice(start, start + step)
            c = len(taken[part])
            # The background's share of every pre-activation, for these coalitions, all rows.
            if every:
                from_b = (everything - np.einsum("d,mdh->mh", taken[start, low:], own_b[:, low:]))[
                    None
                ] - table
            else:
                from_b = everything[None] - np.matmul(taken[part][None], own_b).transpose(1, 0, 2)
            for r in range(n):
                z = buffer[:c]
                np.add(from_b, (taken[part] @ own_x[r])[:, None, :], out=z)
                value[r, part] = self._mean_output(z.reshape(-1, h), c, m)
        return value

    def _by_feature(self, x: Floats, first: Floats) -> Floats:
        """(rows, d, h): each feature's columns' share of the first layer's pre-activation."""
        shares = np.zeros((x.shape[0], len(self.names), first.shape[1]), dtype=np.float64)
        for j in range(len(self.names)):
            mine = self.owners == j
            shares[:, j] = x[:, mine] @ first[mine]
        return shares

    def _mean_output(self, z: Floats, c: int, m: int) -> Floats:
        """(c, outputs): from the first pre-activations of c coalitions x m background rows (in
        place), the rest of the forward pass, averaged over the background, in explained space."""
        mlp = self.mlp
        for i in range(1, len(mlp.coefs_)):
            z = _activate(mlp.activation, z)
            z = z @ mlp.coefs_[i] + mlp.intercepts_[i]
        z = _activate(mlp.out_activation_, z)
        mean: Floats = z.reshape(c, m, -1).mean(axis=1)
        if mlp.out_activation_ == "logistic" and mean.shape[1] == 1 and hasattr(mlp, "classes_"):
            return np.hstack([1.0 - mean, mean])  # a binary classifier's two classes, as predict_proba
        return mean

    def _outputs(self) -> int:
        if hasattr(self.mlp, "classes_"):
            return len(self.mlp.classes_)
        return 1

    def _splits(self, rows: Columns, x: Floats) -> bool:
        """The split reproduces the real transform on some of the rows mixed with the background."""
        rng = np.random.default_rng(0)
        d, m = len(self.names), self.background.shape[0]
        picks = np.arange(min(len(x), 4))
        coalitions = rng.random((_CHECKS, d)) < 0.5
        row_of = np.repeat(picks, _CHECKS * m)
        coalition_of = np.tile(np.repeat(np.arange(_CHECKS), m), len(picks))
        b_of = np.tile(np.arange(m), _CHECKS * len(picks))
        mixed: dict[str, npt.NDArray[Any]] = {}
        for j, name in enumerate(self.names):
            mine = np.asarray(rows[name])[row_of]
            theirs = np.asarray(self.raw[name])[b_of]
            mixed[name] = np.where(coalitions[coalition_of, j], mine, theirs)
        taken = coalitions[coalition_of][:, np.maximum(self.owners, 0)] & (self.owners >= 0)
        assembled = np.where(taken, x[row_of], self.background[b_of])
        real = self.transform(mixed)
        return bool(real.shape == assembled.shape and np.allclose(real, assembled, rtol=1e-12, atol=1e-12))


def _every_coalition(coalitions: npt.NDArray[np.bool_]) -> bool:
    """The coalitions are all 2**d of them, in the order of their bits (`all_coalitions`)."""
    c, d = coalitions.shape
    return c == 1 << d and bool(np.array_equal(coalitions, all_coalitions(d)))


def _owners(
    transform: Callable[[Columns], Floats], names: Sequence[str], background: Columns
) -> npt.NDArray[np.intp] | None:
    """For each transformed column, the one feature it moves with (-1: it never moves), found by
    replacing one feature at a time with other background rows' values; None when a column
    moves with two features (the front is not column-wise)."""
    m = len(background[names[0]])
    base = transform(background)
    owners = np.full(base.shape[1], -1, dtype=np.intp)
    shifts = [s for s in (1, 2, 3, m // 2) if 0 < s < m]
    if not shifts:
        return None  # one background row: nothing varies to tell the columns apart
    for j, name in enumerate(names):
        # Every shift of this feature in one call: the background repeated, the feature rolled.
        varied = {n: np.tile(np.asarray(background[n]), len(shifts)) for n in names}
        varied[name] = np.concatenate([np.roll(np.asarray(background[name]), s) for s in shifts])
        moved = (transform(varied) != np.tile(base, (len(shifts), 1))).any(axis=0)
        if (owners[moved] >= 0).any():
            return None
        owners[moved] = j
    return owners


def _activate(name: str, z: Floats) -> Floats:
    """scikit-learn's MLP activations, on a fresh or owned array."""
    if name == "relu":
        return np.maximum(z, 0.0, out=z)
    if name == "tanh":
        return np.tanh(z, out=z)
    if name == "logistic":
        from scipy.special import expit

        return np.asarray(expit(z, out=z))
    if name == "softmax":
        z = z - z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        return np.asarray(z / z.sum(axis=1, keepdims=True), dtype=np.float64)
    return z  # identity
