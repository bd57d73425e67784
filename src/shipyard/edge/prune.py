"""Pruning: the smallest model whose headline metrics on a holdout drop by at most a bound
(`edge/headline.py`: accuracy, macro F1, ROC AUC and Brier score, or MAE, RMSE and R2).

- MLP and linear models (scikit-learn's, alone or last in a Pipeline): magnitude pruning. Each
  weight matrix (`coefs_`, `coef_`) has its smallest weights by absolute value set to zero, the
  same share in every matrix; the sparsest share tried that stays within the bound wins. Zeroed
  weights are still stored, so the ONNX file keeps its size; they show in its zip-compressed
  size (a run of zeros compresses to almost nothing), which is what a download or a flash image
  of it costs.
- Boosting (an `Ensemble` that sums its trees): the first k rounds are kept (whole rounds: one
  tree per output in multiclass), k found by binary search as the smallest within the bound.
- Forests (an `Ensemble` that averages its trees): trees are dropped greedily, each time, among
  the few whose removal moves the outputs least, the one that makes the worst metric drop
  smallest, while that drop stays within the bound. The trees are chosen on the holdout, so its
  drop is optimistic for unseen rows: a holdout apart from the final evaluation's is best.

A binary search assumes the metrics worsen as rounds are cut; where they do not, the k it
finds is within the bound but may not be the smallest.

Tree models are pruned in the neutral form (`edge/ensemble.py`) and scored with
`Ensemble.answers`, so the pruned ensemble is what the ONNX and C writers take. The model given
is never changed: pruning works on a copy.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from shipyard.core.batch import Array, Label, Task
from shipyard.edge.ensemble import Ensemble
from shipyard.edge.headline import Headline, MetricDrop
from shipyard.edge.timing import Latency, measure
from shipyard.errors import ExportError, InputError, UnsupportedExportError

if TYPE_CHECKING:
    import onnx

__all__ = ["SPARSITIES", "Pruned", "Size", "prune"]

Kind = Literal["weights", "boosting", "forest"]
SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
"""The shares of each weight matrix set to zero that magnitude pruning tries."""
_SHORTLIST = 8  # removals whose metrics a forest's pruning scores at each step


@dataclass(frozen=True)
class Size:
    """An exported file's size, plain and zip-compressed (deflate), in bytes."""

    file: int
    zipped: int

    @classmethod
    def of(cls, data: bytes) -> Size:
        """The sizes of `data`."""
        return cls(len(data), len(zlib.compress(data, 9)))


@dataclass(frozen=True)
class Pruned:
    """A pruned copy of a model and what pruning did.

    Args:
        model: the pruned copy (a scikit-learn model, or an `Ensemble`).
        kind: 'weights' (MLP, linear), 'boosting' or 'forest'.
        metric: the headline metrics on the holdout, before and after.
        max_metric_drop: the bound the drop was held to.
        sparsity: the share of weights set to zero (weights), else None.
        trees: (before, after) tree counts (ensembles), else None.
        kept: the boosting rounds, or the forest's trees (indices), kept.
        tried: each candidate tried (sparsity, or rounds/trees kept) and its metric drop.
        size_before: the exported file's size before, when an exporter was given.
        size_after: after.
        latency_before: measured on the export when an exporter was given, else on the model.
        latency_after: after.
    """

    model: Any
    kind: Kind
    metric: MetricDrop
    max_metric_drop: float
    sparsity: float | None = None
    trees: tuple[int, int] | None = None
    kept: tuple[int, ...] = ()
    tried: tuple[tuple[float, float], ...] = ()
    size_before: Size | None = None
    size_after: Size | None = None
    latency_before: Latency | None = None
    latency_after: Latency | None = None
    measured_on: str = field(default="model")

    def to_dict(self) -> dict[str, Any]:
        """The pruning report, JSON-safe."""
        report: dict[str, Any] = {
            "kind": self.kind,
            "metric": {**self.metric.to_dict(), "max_drop": self.max_metric_drop},
            "sparsity": self.sparsity,
            "trees": None if self.trees is None else {"before": self.trees[0], "after": self.trees[1]},
            "tried": [{"candidate": c, "drop": d} for c, d in self.tried],
        }
        if self.size_before is not None and self.size_after is not None:
            report["size"] = {
                "file": {"before": self.size_before.file, "after": self.size_after.file},
                "zipped": {"before": self.size_before.zipped, "after": self.size_after.zipped},
                "note": "zeroed weights are stored: they shrink the zip-compressed size, not the file",
            }
        if self.latency_before is not None and self.latency_after is not None:
            report["latency"] = {
                "measured_on": self.measured_on,
                "before": self.latency_before.to_dict(),
                "after": self.latency_after.to_dict(),
                "ratio": self.latency_before.ratio(self.latency_after),
            }
        return report


def prune(
    model: Any,
    *,
    holdout_x: Any,
    holdout_y: Any,
    task: Task,
    max_metric_drop: float = 0.005,
    classes: Sequence[Label] | None = None,
    sparsities: Sequence[float] = SPARSITIES,
    export: Callable[[Any], onnx.ModelProto] | None = None,
    repeats: int = 20,
) -> Pruned:
    """Prune a copy of `model` as far as the holdout's headline metrics allow.

    Args:
        model: an MLP or linear model of scikit-learn (or a Pipeline ending in one), or an
            `Ensemble` (see `edge/trees.py`, `edge/boosters.py`).
        holdout_x: the holdout's features, as the model reads them (an Ensemble reads a float
            matrix, categorical columns as codes).
        holdout_y: its true labels or values.
        task: 'classification' or 'regression'.
        max_metric_drop: how much any headline metric may drop.
        classes: a classifier's labels in the order of its scores (the model's, when None).
        sparsities: the shares of weights to try setting to zero.
        export: turns a model into its ONNX graph, for sizes and latency on the export.
        repeats: calls per latency median.

    Raises:
        UnsupportedExportError: the model is none of the kinds above.
        ExportError: no pruning tried stays within the bound.
        InputError: a negative bound.
    """
    if not max_metric_drop >= 0:
        raise InputError(f"max_metric_drop is {max_metric_drop}; expected a drop of 0 or more (e.g. 0.005)")
    if isinstance(model, Ensemble):
        labels = classes if classes is not None else model.classes
        headline = Headline(task, holdout_y, classes=labels)
        pruned = _prune_ensemble(model, np.asarray(holdout_x, dtype=np.float64), headline, max_metric_drop)
    else:
        labels = classes if classes is not None else getattr(model, "classes_", None)
        headline = Headline(task, holdout_y, classes=None if labels is None else list(labels))
        pruned = _prune_weights(model, holdout_x, headline, max_metric_drop, sparsities)
    return _measured(pruned, model, holdout_x, export, repeats)


def _refuse(kind: str, least: tuple[float, float], bound: float) -> ExportError:
    return ExportError(
        f"no {kind} stays within --max-metric-drop {bound}: the least pruning tried ({least[0]:g}) "
        f"drops a headline metric by {least[1]:.4g}; raise the bound or export without --prune"
    )


# --- weights ------------------------------------------------------------------------------


def _weights_of(model: Any) -> tuple[Any, list[str]]:
    """The estimator holding the weights (the last step of a Pipeline) and the attribute paths."""
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    if hasattr(last, "coefs_"):
        return last, [f"coefs_[{i}]" for i in range(len(last.coefs_))]
    if hasattr(last, "coef_") and not hasattr(last, "estimators_"):
        return last, ["coef_"]
    name = type(last).__name__
    if hasattr(model, "steps") and ("Tree" in name or "Forest" in name or "Boost" in name or "LGBM" in name):
        raise UnsupportedExportError(
            f"--prune drops the trees of a bare tree model; this one is the last step of a pipeline "
            f"({name}), which is not pruned. Export without --prune, or register the booster itself "
            "fitted on pandas categories (it reads the strings without a pipeline) and prune that"
        )
    raise UnsupportedExportError(
        f"--prune takes MLPs, linear models and tree ensembles; {name} is none of them; export "
        "without --prune"
    )


def _with_sparsity(model: Any, sparsity: float) -> Any:
    """A copy of `model` with the smallest `sparsity` share of each weight matrix set to zero."""
    pruned = copy.deepcopy(model)
    holder, _ = _weights_of(pruned)
    matrices = holder.coefs_ if hasattr(holder, "coefs_") else [holder.coef_]
    for matrix in matrices:
        cut = round(sparsity * matrix.size)
        # np.put indexes the matrix as flattened in C order, as ravel() does, whatever its layout.
        np.put(matrix, np.argsort(np.abs(matrix).ravel(), kind="stable")[:cut], 0.0)
    return pruned


def _predicted(model: Any, x: Any, headline: Headline) -> dict[str, float]:
    scores = headline.task == "classification" and hasattr(model, "predict_proba")
    return headline.of(model.predict(x), np.asarray(model.predict_proba(x)) if scores else None)


def _prune_weights(
    model: Any, x: Any, headline: Headline, bound: float, sparsities: Sequence[float]
) -> Pruned:
    _weights_of(model)
    before = _predicted(model, x, headline)
    best: tuple[Any, float, MetricDrop] | None = None
    tried = []
    for sparsity in sorted(sparsities):
        candidate = _with_sparsity(model, sparsity)
        drop = MetricDrop(before, _predicted(candidate, x, headline))
        tried.append((sparsity, drop.drop))
        if drop.within(bound):
            best = (candidate, sparsity, drop)
    if best is None:
        raise _refuse("sparsity", tried[0], bound)
    candidate, sparsity, drop = best
    return Pruned(candidate, "weights", drop, bound, sparsity=sparsity, tried=tuple(tried))


# --- trees --------------------------------------------------------------------------------


def _prune_ensemble(ensemble: Ensemble, x: Array, headline: Headline, bound: float) -> Pruned:
    if ensemble.average:
        return _prune_forest(ensemble, x, headline, bound)
    return _prune_boosting(ensemble, x, headline, bound)


def _round_width(ensemble: Ensemble) -> int:
    """Trees per boosting round: one, or one per output when each tree serves one output."""
    if all(t is None for t in ensemble.targets) or ensemble.n_outputs == 1:
        return 1
    width = ensemble.n_outputs
    expected = tuple(i % width for i in range(len(ensemble.trees)))
    if ensemble.targets != expected or len(ensemble.trees) % width:
        raise UnsupportedExportError(
            f"the {ensemble.model or 'boosting'} ensemble's trees are not in whole rounds of one tree "
            f"per output ({width}); its rounds cannot be cut"
        )
    return width


def _prune_boosting(ensemble: Ensemble, x: Array, headline: Headline, bound: float) -> Pruned:
    width = _round_width(ensemble)
    rounds = len(ensemble.trees) // width
    before = headline.of_scores(ensemble.answers(x))
    tried: dict[int, float] = {}

    def drop_with(k: int) -> float:
        if k not in tried:
            kept = ensemble.select(range(k * width))
            tried[k] = MetricDrop(before, headline.of_scores(kept.answers(x))).drop
        return tried[k]

    low, high = 1, rounds  # all rounds drop nothing: the search ends there at worst
    while low < high:
        middle = (low + high) // 2
        if drop_with(middle) <= bound + 1e-12:
            high = middle
        else:
            low = middle + 1
    kept = ensemble.select(range(low * width))
    metric = MetricDrop(before, headline.of_scores(kept.answers(x)))
    return Pruned(
        kept,
        "boosting",
        metric,
        bound,
        trees=(len(ensemble.trees), len(kept.trees)),
        kept=tuple(range(low)),
        tried=tuple(sorted((float(k), d) for k, d in tried.items())),
    )


def _prune_forest(ensemble: Ensemble, x: Array, headline: Headline, bound: float) -> Pruned:
    """Greedy backward elimination on each tree's outputs on the holdout, summed incrementally.

    Each step scores the metrics of only the `_SHORTLIST` removals that move the outputs least
    (cheap to rank), so a forest of T trees costs about T x `_SHORTLIST` metric evaluations
    rather than T squared.
    """
    if ensemble.post != "none":
        raise UnsupportedExportError(
            f"a forest whose outputs pass through {ensemble.post!r} is not pruned here; export "
            "without --prune"
        )
    n = len(ensemble.trees)
    contributions = np.stack([ensemble.select([t]).outputs(x) - ensemble.base for t in range(n)])
    served = np.stack([_served(ensemble, t) for t in range(n)])  # trees x outputs: 1 where it adds

    def answers(total: Array, counts: Array) -> Array:
        raw = total / np.maximum(counts, 1) + ensemble.base
        return raw[:, 0] if ensemble.classes is None else raw

    def without(tree: int, total: Array, counts: Array) -> Array:
        return answers(total - contributions[tree], counts - served[tree])

    total, counts = contributions.sum(axis=0), served.sum(axis=0)
    full = answers(total, counts)
    before = headline.of_scores(full)
    kept = list(range(n))
    removed: list[int] = []
    tried: list[tuple[float, float]] = []
    while len(kept) > 1:
        # One candidate's answers in memory at a time: a multiclass forest's are rows x classes.
        moved = {t: float(np.mean((without(t, total, counts) - full) ** 2)) for t in kept}
        shortlist = sorted(kept, key=lambda t: moved[t])[:_SHORTLIST]
        drops = {t: MetricDrop(before, headline.of_scores(without(t, total, counts))).drop for t in shortlist}
        best = min(shortlist, key=lambda t: (drops[t], moved[t]))
        if drops[best] > bound + 1e-12:
            break
        kept.remove(best)
        removed.append(best)
        total, counts = total - contributions[best], counts - served[best]
        tried.append((float(len(kept)), drops[best]))
    # The search sums incrementally; the ensemble's own scoring is the judge. Where they part (a
    # tie between classes broken by the last bit), put trees back, last removed first.
    while True:
        pruned = ensemble.select(sorted(kept))
        metric = MetricDrop(before, headline.of_scores(pruned.answers(x)))
        if metric.within(bound) or not removed:
            break
        kept.append(removed.pop())
    return Pruned(
        pruned, "forest", metric, bound, trees=(n, len(kept)), kept=tuple(sorted(kept)), tried=tuple(tried)
    )


def _served(ensemble: Ensemble, tree: int) -> Array:
    target = ensemble.targets[tree]
    served = np.zeros(ensemble.n_outputs)
    served[slice(None) if target is None else target] = 1.0
    return served


# --- size and latency ---------------------------------------------------------------------


def _measured(
    pruned: Pruned, original: Any, x: Any, export: Callable[[Any], onnx.ModelProto] | None, repeats: int
) -> Pruned:
    from dataclasses import replace

    if export is None:
        call = _model_call(original)
        before = measure(call(original), _first(x), x, batch_rows=len(x), repeats=repeats)
        after = measure(call(pruned.model), _first(x), x, batch_rows=len(x), repeats=repeats)
        return replace(pruned, latency_before=before, latency_after=after, measured_on="model")
    graphs = (export(original), export(pruned.model))
    sizes = [Size.of(g.SerializeToString()) for g in graphs]
    latencies = [_graph_latency(g, x, repeats) for g in graphs]
    return replace(
        pruned,
        size_before=sizes[0],
        size_after=sizes[1],
        latency_before=latencies[0],
        latency_after=latencies[1],
        measured_on="onnx",
    )


def _model_call(model: Any) -> Callable[[Any], Callable[[Any], object]]:
    if isinstance(model, Ensemble):
        return lambda m: m.answers
    return lambda m: m.predict


def _first(x: Any) -> Any:
    return x.iloc[:1] if hasattr(x, "iloc") else x[:1]


def _graph_latency(graph: onnx.ModelProto, x: Any, repeats: int) -> Latency:
    import onnxruntime as ort

    from shipyard.core.batch import Batch
    from shipyard.edge.calibration import feeds_of

    rows = Batch.coerce(x) if hasattr(x, "iloc") else np.asarray(x)
    feeds = feeds_of(graph, rows)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    one = {k: v[:1] for k, v in feeds.items()}
    rows_count = len(next(iter(feeds.values())))
    return measure(lambda f: session.run(None, f), one, feeds, batch_rows=rows_count, repeats=repeats)
