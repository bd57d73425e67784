"""Evaluate a registered version on a labelled data set, through its contract, and store the result.

The rows go through the version's contract first, as at serving time; rows it rejects are
counted (with their first violations) and left out, so the numbers describe what the model would
have answered. When the champion alias (default `production`) points at another version, that
version is evaluated on the same rows too, so the two can be compared side by side and the gates
can hold the challenger to the champion.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shipyard.core.batch import Array, Batch, Task
from shipyard.core.jsonsafe import json_safe
from shipyard.errors import EvaluationError, NotFoundError, ShipyardError
from shipyard.evaluation.fairness import group_fairness
from shipyard.evaluation.metrics import (
    ClassificationData,
    HeadlineWeights,
    bootstrap,
    classification_metrics,
    positions,
    regression_metrics,
)
from shipyard.evaluation.robustness import RobustnessSettings, robustness
from shipyard.evaluation.slices import SliceSpec, grouping
from shipyard.security.masking import Masker

if TYPE_CHECKING:
    from shipyard.registry.loaded import LoadedModel
    from shipyard.registry.records import EvaluationRecord
    from shipyard.registry.registry import Registry

__all__ = ["DEFAULT_CHAMPION", "Evaluation", "evaluate"]

DEFAULT_CHAMPION = "production"
_CURVE_POINTS = 200
_SHOWN_VIOLATIONS = 5


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """The metrics of one version on one data set.

    Args:
        name: the model's name.
        version: the version evaluated.
        task: 'classification' or 'regression'.
        data: where the rows came from, how many were evaluated and rejected, their fingerprint.
        metrics: the point metrics on every evaluated row.
        confidence: bootstrap intervals of the headline metrics.
        slices: per sliced feature, the metrics of each group with its row count.
        fairness: per sensitive feature, the group rates and the disparities.
        robustness: stability under noise and category swaps, and the attack's success rate.
        curves: ROC and precision-recall curves, thinned for plotting.
        settings: the threshold, bins, resamples, seed and level used.
        created_at: when it ran (ISO 8601, UTC).
        seconds: how long it took.
        id: the stored evaluation's id, when stored.
        champion: the champion's evaluation on the same rows, when there is a champion.
        champion_alias: the alias the champion was looked up by.
        champion_error: why the champion could not be evaluated on these rows.
    """

    name: str
    version: int
    task: Task
    data: Mapping[str, Any]
    metrics: Mapping[str, Any]
    confidence: Mapping[str, Any] = field(default_factory=dict)
    slices: Mapping[str, Any] = field(default_factory=dict)
    fairness: Mapping[str, Any] = field(default_factory=dict)
    robustness: Mapping[str, Any] = field(default_factory=dict)
    curves: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    created_at: str = ""
    seconds: float = 0.0
    id: int | None = None
    champion: Evaluation | None = None
    champion_alias: str | None = None
    champion_error: str | None = None

    @property
    def ref(self) -> str:
        """`NAME:VERSION` of the version evaluated."""
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """The evaluation as JSON-safe data (the champion's in full, under 'champion')."""
        out: dict[str, Any] = {
            "id": self.id,
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "created_at": self.created_at,
            "seconds": self.seconds,
            "settings": dict(self.settings),
            "data": dict(self.data),
            "metrics": dict(self.metrics),
            "confidence": dict(self.confidence),
            "slices": dict(self.slices),
            "fairness": dict(self.fairness),
            "robustness": dict(self.robustness),
            "curves": dict(self.curves),
            "champion_alias": self.champion_alias,
        }
        if self.champion is not None:
            out["champion"] = self.champion.to_dict()
        if self.champion_error is not None:
            out["champion_error"] = self.champion_error
        cleaned: dict[str, Any] = json_safe(out)
        return cleaned

    def _stored(self) -> dict[str, Any]:
        """What the registry keeps: the champion by reference, not in full."""
        body = self.to_dict()
        champion = body.pop("champion", None)
        body.pop("id", None)
        if champion is not None:
            body["champion_ref"] = {"ref": champion["ref"]}
        return body

    @classmethod
    def from_record(cls, record: EvaluationRecord) -> Evaluation:
        """An evaluation read back from the registry (without its champion's)."""
        body = dict(record.body)
        return cls(
            name=record.name,
            version=record.version,
            task=body["task"],
            data=body.get("data", {}),
            metrics=body.get("metrics", {}),
            confidence=body.get("confidence", {}),
            slices=body.get("slices", {}),
            fairness=body.get("fairness", {}),
            robustness=body.get("robustness", {}),
            curves=body.get("curves", {}),
            settings=body.get("settings", {}),
            created_at=body.get("created_at", ""),
            seconds=body.get("seconds", 0.0),
            id=record.id,
            champion_alias=body.get("champion_alias"),
            champion_error=body.get("champion_error"),
        )


def evaluate(
    ref: str,
    data: Any,
    *,
    target: str,
    sensitive: Sequence[str] = (),
    slices: Sequence[str | SliceSpec] = (),
    positive: Any = None,
    threshold: float | None = None,
    bins: int = 10,
    resamples: int = 200,
    seed: int = 0,
    level: float = 0.95,
    robust: RobustnessSettings | bool = True,
    champion: str | None = DEFAULT_CHAMPION,
    store: bool = True,
    trust_pickle: bool = False,
    registry: Registry | None = None,
) -> Evaluation:
    """Evaluate a version on labelled rows and store the result on the version.

    Args:
        ref: the version (`fraud:4`, `fraud@staging`).
        data: a CSV, Parquet or JSON Lines file, or rows (DataFrame, Arrow table, records).
        target: the column holding the true labels (or values, for a regressor).
        sensitive: features to measure group fairness over.
        slices: features to break the metrics down by (`country`, `age:4`, `age:18,30,50`).
        positive: the positive class for fairness (default: the second class of a binary model).
        threshold: also compute the threshold-dependent metrics at this probability cut-off.
        bins: calibration bins (uniform and quantile).
        resamples: bootstrap resamples of the headline metrics (0 for none).
        seed: the seed of the bootstrap and the robustness checks.
        level: the confidence level of the bootstrap intervals.
        robust: the robustness budgets, True for the defaults, False to skip.
        champion: the alias of the version to compare with (None: no comparison).
        store: keep the evaluation on the version in the registry.
        trust_pickle: allow loading custom Python models (pyfunc), which runs their code.
        registry: the registry (the default one from the environment when omitted).

    Raises:
        EvaluationError: no target column, a target of the wrong type or with missing or unseen
            labels, an unknown sensitive or slice feature, no rows, or no row the contract accepts.
        NotFoundError: no such version.
    """
    from shipyard.registry.default import default_registry

    reg = registry or default_registry()
    loaded = reg.load(ref, trust_pickle=trust_pickle)
    version = loaded.version
    source = str(data) if isinstance(data, str | os.PathLike) else type(data).__name__
    batch = _read(data, loaded)
    specs = [s if isinstance(s, SliceSpec) else SliceSpec.parse(s) for s in slices]
    _check_columns(batch, target, sensitive, specs, str(version.ref))
    options = _Options(
        target=target,
        sensitive=tuple(sensitive),
        specs=tuple(specs),
        positive=positive,
        threshold=threshold,
        bins=bins,
        resamples=resamples,
        seed=seed,
        level=level,
        robust=RobustnessSettings(seed=seed) if robust is True else (robust or None),
    )
    from shipyard.registry.lineage import fingerprint

    rows_id = fingerprint(batch)  # hashed once: the champion is evaluated on the same rows
    if loaded.contract.pii_masks:  # group labels of pii features are keyed hashes, never values
        options = replace(options, masker=Masker.for_home(reg.settings.home, reg.settings.masking_key))
    result = _evaluate_loaded(loaded, batch, options, source, rows_id)
    rival: Evaluation | None = None
    rival_error: str | None = None
    if champion is not None:
        try:
            holder = reg.get(f"{version.name}@{champion}")
        except NotFoundError:
            holder = None
        if holder is not None and holder.version != version.version:
            try:
                rival = _evaluate_loaded(
                    reg.load(holder.ref, trust_pickle=trust_pickle), batch, options, source, rows_id
                )
            except ShipyardError as exc:
                rival_error = f"{holder.ref} ({champion}) cannot be evaluated on these rows: {exc}"
    result = replace(result, champion=rival, champion_alias=champion, champion_error=rival_error)
    if not store:
        return result
    stored, stored_rival = reg.results.add_evaluation(
        result.ref,
        data_fingerprint=str(result.data["fingerprint"]),
        rows=int(result.data["rows"]),
        body=result._stored(),
        champion=None if rival is None else (rival.ref, rival._stored()),
    )
    if rival is not None and stored_rival is not None:
        rival = replace(rival, id=stored_rival.id)
    return replace(result, id=stored.id, champion=rival)


@dataclass(frozen=True, kw_only=True)
class _Options:
    target: str
    sensitive: tuple[str, ...]
    specs: tuple[SliceSpec, ...]
    positive: Any
    threshold: float | None
    bins: int
    resamples: int
    seed: int
    level: float
    robust: RobustnessSettings | None
    masker: Masker | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "sensitive": list(self.sensitive),
            "slices": [str(s) for s in self.specs],
            "positive": _plain(self.positive),
            "threshold": self.threshold,
            "bins": self.bins,
            "resamples": self.resamples,
            "seed": self.seed,
            "level": self.level,
            "robustness": None if self.robust is None else self.robust.to_dict(),
        }


def _read(data: Any, loaded: LoadedModel) -> Batch:
    from shipyard.store.tabular import read_rows

    if isinstance(data, str | os.PathLike):
        batch = read_rows(Path(data), contract=loaded.contract)
    else:
        batch = Batch.coerce(data)
    if batch.n_rows == 0:
        raise EvaluationError(
            f"the data to evaluate {loaded.version.ref} on has no rows; expected labelled rows"
        )
    return batch


def _check_columns(
    batch: Batch, target: str, sensitive: Sequence[str], specs: Sequence[SliceSpec], where: str
) -> None:
    columns = list(batch.names)
    if target not in batch.columns:
        raise EvaluationError(
            f"the data has no target column {target!r}; its columns are {columns}. Name the label "
            "column with --target"
        )
    for name in sensitive:
        if name not in batch.columns:
            raise EvaluationError(f"sensitive feature {name!r} is not in the data; its columns are {columns}")
    for spec in specs:
        if spec.feature not in batch.columns:
            raise EvaluationError(
                f"slice feature {spec.feature!r} is not in the data; its columns are {columns}"
            )
        if spec.feature == target:
            raise EvaluationError(f"slice {spec} is the target column; slice by a feature of {where}")


def _evaluate_loaded(
    loaded: LoadedModel, batch: Batch, options: _Options, source: str, rows_id: str
) -> Evaluation:
    started = time.perf_counter()
    version = loaded.version
    where = str(version.ref)
    task = loaded.contract.task
    raw_target = batch.columns[options.target]
    missing = pd.isna(pd.Series(raw_target, copy=False)).to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        raise EvaluationError(
            f"target {options.target!r} is missing in {len(rows)} row(s) (first: {rows[:5].tolist()}); "
            f"every row evaluated needs its label"
        )
    truth_all = _truth(raw_target, loaded, options.target)
    validation = loaded.validate(batch)
    accepted = validation.accepted_rows
    if len(accepted) == 0:
        raise EvaluationError(
            f"the contract of {where} rejects every one of the {batch.n_rows} row(s), so there is "
            f"nothing to evaluate:\n{validation.message(where)}"
        )
    clean = validation.batch if len(accepted) == batch.n_rows else validation.batch.take(accepted)
    predictions = loaded.predict_valid(clean)
    truth = truth_all if len(accepted) == batch.n_rows else truth_all[accepted]
    rejected = batch.n_rows - len(accepted)
    data_info: dict[str, Any] = {
        "source": source,
        "rows": batch.n_rows,
        "evaluated": len(accepted),
        "rejected": rejected,
        "rejected_share": rejected / batch.n_rows,
        "fingerprint": rows_id,
        "target": options.target,
    }
    if rejected:
        data_info["violations"] = [str(v) for v in validation.violations[:_SHOWN_VIOLATIONS]]

    def column(name: str, spec: SliceSpec | None = None) -> Array:
        values = batch.columns[name]
        values = values if len(accepted) == batch.n_rows else values[accepted]
        return _group_values(values, name, spec, options, loaded.contract.pii_masks)

    out: dict[str, Any] = {"data": data_info}
    if task == "classification":
        classes = tuple(predictions.classes or loaded.contract.classes or ())
        y_pred = positions(predictions.values, classes, what=f"the predictions of {where}")
        cdata = ClassificationData(classes, truth, y_pred, predictions.probabilities)
        out["metrics"] = classification_metrics(cdata, threshold=options.threshold, bins=options.bins)
        headline = HeadlineWeights(cdata)
        out["curves"] = _curves(cdata)
        out["slices"] = {
            str(spec): _sliced(
                column(spec.feature, spec), spec, lambda rows: _class_slice(cdata, rows, options)
            )
            for spec in options.specs
        }
        positive = _positive(classes, options.positive, where) if options.sensitive else None
        out["fairness"] = {
            name: group_fairness(_groups(column(name), name), truth == positive, y_pred == positive)
            | {"positive": _plain(classes[positive] if positive is not None else None)}
            for name in options.sensitive
        }
        robust_truth: Array | None = truth
    else:
        y_true = truth.astype(np.float64)
        y_hat = predictions.values.astype(np.float64)
        classes = None
        out["metrics"] = regression_metrics(y_true, y_hat)
        headline = HeadlineWeights(y_true=y_true, y_pred=y_hat)
        out["curves"] = {}
        out["slices"] = {
            str(spec): _sliced(
                column(spec.feature, spec), spec, lambda rows: regression_metrics(y_true[rows], y_hat[rows])
            )
            for spec in options.specs
        }
        out["fairness"] = {
            name: _regression_fairness(_groups(column(name), name), y_true, y_hat)
            for name in options.sensitive
        }
        robust_truth = None
    out["confidence"] = (
        bootstrap(headline, len(truth), resamples=options.resamples, seed=options.seed, level=options.level)
        if options.resamples > 0
        else {}
    )
    out["robustness"] = (
        robustness(loaded, clean, robust_truth, classes, options.robust) if options.robust is not None else {}
    )
    return Evaluation(
        name=version.name,
        version=version.version,
        task=task,
        data=data_info,
        metrics=out["metrics"],
        confidence=out["confidence"],
        slices=out["slices"],
        fairness=out["fairness"],
        robustness=out["robustness"],
        curves=out["curves"],
        settings=options.to_dict(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=round(time.perf_counter() - started, 3),
    )


def _truth(raw: Array, loaded: LoadedModel, target: str) -> Array:
    where = str(loaded.version.ref)
    if loaded.contract.task == "classification":
        classes = loaded.contract.classes or ()
        try:
            return positions(raw, classes, what=f"target {target!r}")
        except ValueError as exc:
            raise EvaluationError(f"{exc}; evaluate {where} on labels it was trained to predict") from None
    if raw.dtype.kind in "iuf":
        return raw.astype(np.float64)
    numbers = pd.to_numeric(pd.Series(raw, copy=False), errors="coerce")
    bad = numbers.isna().to_numpy()
    if bad.any():
        shown = sorted({str(v) for v in raw[bad][:50]})[:5]
        raise EvaluationError(
            f"target {target!r} holds non-numeric values {shown}; {where} is a regressor, so its "
            "target must be numbers"
        )
    return numbers.to_numpy(dtype=np.float64)


def _positive(classes: tuple[Any, ...], positive: Any, where: str) -> int:
    if positive is None:
        if len(classes) != 2:
            raise EvaluationError(
                f"{where} has {len(classes)} classes {list(classes)}; fairness compares who gets a "
                "positive outcome, so name the positive class (positive=... or --positive)"
            )
        return 1
    try:
        return int(positions([positive], classes, what="the positive class")[0])
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None


def _group_values(
    values: Array, name: str, spec: SliceSpec | None, options: _Options, pii: Mapping[str, str]
) -> Array:
    """A feature's values to group by; a pii feature grouped by value (not cut into numeric
    bins) is grouped by its keyed hashes, so results and reports never show its values."""
    binned = spec is not None and (spec.bins is not None or spec.edges is not None)
    if name in pii and not binned and options.masker is not None:
        return options.masker.column(values, "hash")
    return values


def _groups(column: Array, name: str) -> Array:
    labels, index, _ = grouping(column, SliceSpec(name))
    return np.asarray(labels, dtype=object)[index]


def _sliced(column: Array, spec: SliceSpec, metrics: Any) -> dict[str, Any]:
    labels, index, kind = grouping(column, spec)
    order = np.argsort(index, kind="stable")
    bounds = np.searchsorted(index[order], np.arange(len(labels) + 1))
    groups = []
    for j, label in enumerate(labels):
        rows = order[bounds[j] : bounds[j + 1]]
        if len(rows) == 0:
            continue
        groups.append({"value": label, "rows": len(rows), "metrics": metrics(np.sort(rows))})
    return {"feature": spec.feature, "kind": kind, "groups": groups}


def _class_slice(data: ClassificationData, rows: Array, options: _Options) -> dict[str, Any]:
    proba = None if data.proba is None else data.proba[rows]
    part = ClassificationData(data.classes, data.y_true[rows], data.y_pred[rows], proba)
    metrics = classification_metrics(part, threshold=options.threshold, bins=options.bins)
    for key in ("reliability_uniform", "reliability_quantile", "classes"):
        metrics.pop(key, None)
    return metrics


def _regression_fairness(groups: Array, y_true: Array, y_pred: Array) -> dict[str, Any]:
    names, index = np.unique(groups.astype(str), return_inverse=True)
    error = np.abs(y_pred - y_true)
    count = np.bincount(index, minlength=len(names))
    mae = np.bincount(index, weights=error, minlength=len(names)) / np.maximum(count, 1)
    mean_pred = np.bincount(index, weights=y_pred, minlength=len(names)) / np.maximum(count, 1)
    return {
        "groups": {
            str(n): {"count": int(count[j]), "mae": float(mae[j]), "mean_prediction": float(mean_pred[j])}
            for j, n in enumerate(names)
        },
        "mae_difference": float(mae.max() - mae.min()),
        "mean_prediction_difference": float(mean_pred.max() - mean_pred.min()),
    }


def _curves(data: ClassificationData) -> dict[str, Any]:
    from sklearn.metrics import precision_recall_curve, roc_curve

    if data.proba is None:
        return {}
    targets = [1] if data.binary else range(len(data.classes))
    roc: dict[str, Any] = {}
    pr: dict[str, Any] = {}
    for j in targets:
        positive = data.y_true == j
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, data.proba[:, j])
        precision, recall, _ = precision_recall_curve(positive, data.proba[:, j])
        keep = _thin(len(fpr))
        roc[str(data.classes[j])] = {"fpr": fpr[keep].round(5).tolist(), "tpr": tpr[keep].round(5).tolist()}
        keep = _thin(len(recall))
        pr[str(data.classes[j])] = {
            "recall": recall[keep].round(5).tolist(),
            "precision": precision[keep].round(5).tolist(),
        }
    return {"roc": roc, "pr": pr}


def _thin(n: int) -> Array:
    if n <= _CURVE_POINTS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, _CURVE_POINTS).round().astype(np.int64))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
