"""Robustness: how predictions hold up under small perturbations and a black-box attack.

Every perturbed input goes through the model's contract before the model sees it, exactly as at
serving time: an input the contract rejects is counted as *sanitised* (the door stopped it), never
as a prediction that changed or an attack that succeeded.

- Noise: Gaussian noise with a standard deviation of `noise` times each numeric feature's spread
  (its standard deviation in the data evaluated); stability is the share of rows whose predicted
  class is unchanged (for regressors, the mean absolute change over the predictions' spread).
- Category swaps: each categorical feature in turn takes another category the contract allows;
  stability per feature.
- Attack: a score-based black-box random search in the L-infinity ball of radius `eps` times each
  feature's spread (in the spirit of the Square Attack, Andriushchenko et al. 2020): start at a
  random vertex of the ball, then re-draw a shrinking share of coordinates on the ball's faces and
  keep a proposal when it lowers the true class's margin. A row is broken when the predicted class
  changes within `queries` model calls. It only queries the model (labels and probabilities), so it
  applies to any flavor. The success rate is over rows the model classified correctly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from shipyard.core.batch import Array, Batch
from shipyard.core.dtypes import DType
from shipyard.core.scores import positions

if TYPE_CHECKING:
    from shipyard.registry.loaded import LoadedModel

__all__ = ["RobustnessSettings", "adversarial_examples", "robustness"]


@dataclass(frozen=True, kw_only=True)
class RobustnessSettings:
    """The budgets of the robustness checks.

    Args:
        rows: rows sampled for the noise and swap checks.
        noise: the noise's standard deviation, as a share of each feature's spread.
        eps: the attack's L-infinity budget, as a share of each feature's spread.
        queries: model calls the attack may make per row.
        attack_rows: correctly classified rows the attack tries to break.
        seed: the random seed; the same seed gives the same figures.
    """

    rows: int = 1000
    noise: float = 0.05
    eps: float = 0.25
    queries: int = 100
    attack_rows: int = 200
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-safe data."""
        return {
            "rows": self.rows,
            "noise": self.noise,
            "eps": self.eps,
            "queries": self.queries,
            "attack_rows": self.attack_rows,
            "seed": self.seed,
        }


class _Probe:
    """Queries a loaded model the way a server would: contract first, then predict."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.contract = loaded.contract
        self.queries = 0
        self.sanitised = 0

    def __call__(self, batch: Batch) -> tuple[Array, Array, Array | None]:
        """(accepted mask, predicted values of accepted rows, their probabilities)."""
        scored = self.loaded.score(batch)  # quarantine: the rows the contract rejects are sanitised
        accepted = np.zeros(batch.n_rows, dtype=bool)
        accepted[scored.accepted] = True
        self.queries += batch.n_rows
        self.sanitised += batch.n_rows - len(scored.accepted)
        if scored.predictions is None:
            return accepted, np.empty(0, dtype=object), None
        return accepted, scored.predictions.values, scored.predictions.probabilities


def robustness(
    loaded: LoadedModel,
    batch: Batch,
    y_true: Array | None,
    classes: tuple[Any, ...] | None,
    settings: RobustnessSettings,
) -> dict[str, Any]:
    """Stability under noise and category swaps, and the attack's success rate.

    Args:
        loaded: the version under test.
        batch: rows that passed the contract, in contract order.
        y_true: the true class of each row as a position into `classes` (classifiers), else None.
        classes: the classifier's classes, in the order of its probability columns.
        settings: the budgets and the seed.
    """
    # Many calls on a few hundred rows: a thread pool's start-up costs more than it saves.
    with threadpool_limits(1):
        rng = np.random.default_rng(settings.seed)
        n = batch.n_rows
        sample = np.sort(rng.choice(n, size=min(n, settings.rows), replace=False))
        base = batch.take(sample)
        probe = _Probe(loaded)
        _, reference, _ = probe(base)
        spreads = _spreads(loaded, batch)
        out: dict[str, Any] = {"settings": settings.to_dict(), "rows": len(sample)}
        out["noise"] = _noise(
            probe,
            base,
            reference,
            spreads=spreads,
            settings=settings,
            rng=rng,
            classifier=classes is not None,
        )
        out["swap"] = _swaps(probe, base, reference, rng)
        if classes is not None and y_true is not None:
            attack = _attack(
                loaded, batch, y_true, classes=classes, spreads=spreads, settings=settings, rng=rng
            )
            attack.pop("_rows")
            attack.pop("_batch")
            out["attack"] = attack
        else:
            out["attack"] = {"skipped": "the attack changes a class; it applies to classifiers"}
        return out


def adversarial_examples(
    loaded: LoadedModel,
    data: Any,
    labels: Any,
    *,
    eps: float = 0.25,
    queries: int = 100,
    seed: int = 0,
) -> tuple[Batch, Array]:
    """Inputs near `data` that the model gets wrong and the contract accepts, for adversarial training.

    Augment the training data with these rows and their true labels, retrain, register, and
    evaluate the new version (see docs/evaluation.md).

    Args:
        loaded: a classifier version.
        data: the rows to start from (DataFrame, Arrow table, records or Batch).
        labels: their true labels.
        eps: the L-infinity budget, as a share of each numeric feature's spread.
        queries: model calls per row.
        seed: the random seed.

    Returns:
        The adversarial rows (only those that broke the model) and their true labels.
    """
    from shipyard.errors import EvaluationError

    classes = loaded.contract.classes
    if loaded.contract.task != "classification" or not classes:
        raise EvaluationError(
            f"{loaded.version.ref} is a {loaded.contract.task} model; adversarial examples flip a class, "
            "so they apply to classifiers"
        )
    validation = loaded.validate(data)
    validation.raise_if_invalid(str(loaded.version.ref))
    try:
        y = positions(np.asarray(labels, dtype=object), classes, what="the labels")
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None
    settings = RobustnessSettings(eps=eps, queries=queries, attack_rows=validation.batch.n_rows, seed=seed)
    rng = np.random.default_rng(seed)
    with threadpool_limits(1):
        found = _attack(
            loaded,
            validation.batch,
            y,
            classes=tuple(classes),
            spreads=_spreads(loaded, validation.batch),
            settings=settings,
            rng=rng,
        )
    rows = np.asarray(found.pop("_rows"), dtype=np.int64)
    adversarial: Batch = found.pop("_batch")
    return adversarial, np.asarray(classes, dtype=object)[y[rows]]


def _spreads(loaded: LoadedModel, batch: Batch) -> dict[str, float]:
    """Each perturbable numeric feature's standard deviation in the data (ignoring missing values)."""
    spreads = {}
    for feature in loaded.contract.features:
        if feature.dtype not in (DType.FLOAT, DType.INT):
            continue
        values = batch.columns[feature.name].astype(np.float64)
        values = values[~np.isnan(values)]
        spread = float(values.std()) if len(values) > 1 else 0.0
        if spread > 0:
            spreads[feature.name] = spread
    return spreads


def _moved(loaded: LoadedModel, base: Batch, deltas: dict[str, Array]) -> Batch:
    columns = dict(base.columns)
    for name, delta in deltas.items():
        value = base.columns[name].astype(np.float64) + delta
        if loaded.contract.feature(name).dtype is DType.INT:
            value = np.round(value)
        columns[name] = value
    return Batch(columns, base.n_rows)


def _noise(
    probe: _Probe,
    base: Batch,
    reference: Array,
    *,
    spreads: dict[str, float],
    settings: RobustnessSettings,
    rng: np.random.Generator,
    classifier: bool,
) -> dict[str, Any]:
    n = base.n_rows
    deltas = {name: rng.normal(0.0, settings.noise * s, n) for name, s in spreads.items()}
    before = probe.sanitised
    accepted, values, _ = probe(_moved(probe.loaded, base, deltas))
    out: dict[str, Any] = {
        "scale": settings.noise,
        "features": sorted(spreads),
        "rows": int(accepted.sum()),
        "sanitised": probe.sanitised - before,
    }
    if not spreads:
        return out | {"skipped": "no numeric feature with any spread to perturb"}
    if not accepted.any():
        return out
    kept = reference[accepted]
    if classifier:
        out["stability"] = float(np.mean(values == kept))
    else:
        change = np.abs(values.astype(np.float64) - kept.astype(np.float64))
        spread = float(np.std(reference.astype(np.float64))) or 1.0
        out["mean_abs_change"] = float(change.mean())
        out["relative_change"] = float(change.mean() / spread)
    return out


def _swaps(probe: _Probe, base: Batch, reference: Array, rng: np.random.Generator) -> dict[str, Any]:
    per_feature: dict[str, Any] = {}
    classifier = probe.contract.task == "classification"
    for feature in probe.contract.features:
        if not feature.categories or len(feature.categories) < 2:
            continue
        current = base.columns[feature.name]
        choices = np.asarray(feature.categories, dtype=object)
        k = len(choices)
        where = {str(c): j for j, c in enumerate(choices)}
        position = np.array([where.get(str(v), -1) for v in current.tolist()], dtype=np.int64)
        # Another category than the row's own: shift by 1..k-1 places (any category for a missing one).
        shift = rng.integers(1, k, base.n_rows)
        swapped = choices[np.where(position >= 0, (position + shift) % k, rng.integers(0, k, base.n_rows))]
        if current.dtype.kind != "O":
            swapped = swapped.astype(current.dtype)
        columns = dict(base.columns)
        columns[feature.name] = swapped
        before = probe.sanitised
        accepted, values, _ = probe(Batch(columns, base.n_rows))
        entry: dict[str, Any] = {"rows": int(accepted.sum()), "sanitised": probe.sanitised - before}
        if accepted.any():
            kept = reference[accepted]
            if classifier:
                entry["stability"] = float(np.mean(values == kept))
            else:
                entry["mean_abs_change"] = float(
                    np.mean(np.abs(values.astype(np.float64) - kept.astype(np.float64)))
                )
        per_feature[feature.name] = entry
    out: dict[str, Any] = {"features": per_feature}
    stabilities = [e["stability"] for e in per_feature.values() if "stability" in e]
    if stabilities:
        out["stability"] = float(min(stabilities))
        out["weakest"] = min(per_feature, key=lambda f: per_feature[f].get("stability", 1.0))
    return out


def _attack(
    loaded: LoadedModel,
    batch: Batch,
    y_true: Array,
    *,
    classes: tuple[Any, ...],
    spreads: dict[str, float],
    settings: RobustnessSettings,
    rng: np.random.Generator,
) -> dict[str, Any]:
    described = {
        "method": "score-based random search (Square Attack style), L-infinity",
        "eps": settings.eps,
        "queries": settings.queries,
        "features": sorted(spreads),
    }
    probe = _Probe(loaded)
    accepted, values, _ = probe(batch)
    label_index = positions(values, classes, what="the predictions")
    correct = np.flatnonzero(accepted)[label_index == y_true[accepted]]
    if not spreads or len(correct) == 0:
        # Nothing attacked is not "nothing broken": leave the rate out, so a rule on it fails.
        why = "no numeric feature with any spread to perturb" if not spreads else "no row classified right"
        return described | {"rows": 0, "skipped": why, "_rows": [], "_batch": batch.take([])}
    chosen = np.sort(rng.choice(correct, size=min(len(correct), settings.attack_rows), replace=False))
    base = batch.take(chosen)
    truth = y_true[chosen]
    names = sorted(spreads)
    scale = np.array([settings.eps * spreads[name] for name in names])
    m, d = len(chosen), len(names)
    delta = scale * rng.choice([-1.0, 1.0], size=(m, d))
    best = np.full(m, np.inf)
    broken = np.zeros(m, dtype=bool)
    spent = np.zeros(m, dtype=np.int64)
    touched_door = np.zeros(m, dtype=bool)
    probe = _Probe(loaded)
    proposal = delta.copy()
    for step in range(settings.queries):
        active = np.flatnonzero(~broken)
        if len(active) == 0:
            break
        if step > 0:
            share = max(0.05, 0.3 * (1.0 - step / settings.queries))
            redraw = rng.random((len(active), d)) < share
            redraw[np.arange(len(active)), rng.integers(0, d, len(active))] = True
            faces = scale * rng.choice([-1.0, 1.0], size=(len(active), d))
            proposal[active] = np.where(redraw, faces, delta[active])
        candidate = _moved(loaded, base.take(active), {n: proposal[active, j] for j, n in enumerate(names)})
        ok, predicted, proba = probe(candidate)
        spent[active] += 1
        touched_door[active[~ok]] = True
        queried = active[ok]
        labels = positions(predicted, classes, what="the predictions")
        margin = _margins(proba, truth[queried], labels)
        improved = margin < best[queried]
        keep = queried[improved]
        delta[keep] = proposal[keep]
        best[keep] = margin[improved]
        broken[queried[labels != truth[queried]]] = True
    rows = np.flatnonzero(broken)
    adversarial = _moved(loaded, base.take(rows), {n: delta[rows, j] for j, n in enumerate(names)})
    return described | {
        "rows": m,
        "broken": int(broken.sum()),
        "success_rate": float(broken.mean()),
        "median_queries": float(np.median(spent[broken])) if broken.any() else None,
        "sanitised_queries": probe.sanitised,
        "sanitised_share": probe.sanitised / max(probe.queries, 1),
        "rows_sanitised": int((touched_door & ~broken).sum()),
        "_rows": chosen[rows].tolist(),
        "_batch": adversarial,
    }


def _margins(proba: Array | None, truth: Array, labels: Array) -> Array:
    """The true class's probability minus the best other one (below zero: the class flipped)."""
    if proba is None:
        return np.where(labels == truth, 1.0, -1.0)
    rows = np.arange(len(truth))
    own = proba[rows, truth]
    others = proba.copy()
    others[rows, truth] = -np.inf
    return np.asarray(own - others.max(axis=1))
