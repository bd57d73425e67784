"""A monitoring report of one version over a window of the prediction log.

`monitor_report` reads the window's events, profiles them on the version's reference edges,
compares them (data drift and prediction drift), joins the labels that have arrived (performance
with confidence intervals against the version's evaluation, DDM and ADWIN on the error stream),
estimates accuracy where labels are missing, and cuts the window into buckets for the timeline
(requests, error rate, latency quantiles, drift share, performance).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shipyard.core.jsonsafe import json_safe
from shipyard.core.refs import ModelRef
from shipyard.errors import MonitoringError
from shipyard.monitoring.concept import detect, estimate_accuracy, performance
from shipyard.monitoring.drift import DriftReport, compare
from shipyard.monitoring.event_columns import (
    latency_quantiles,
    rows_per_version,
    struct_batch,
    struct_columns,
    take_rows,
)
from shipyard.monitoring.events import read_events
from shipyard.monitoring.feedback import FeedbackStore, decode_labels, fit_label
from shipyard.monitoring.importance import Weights, weights_of
from shipyard.monitoring.thresholds import DriftSettings

if TYPE_CHECKING:
    from shipyard.registry.records import EvaluationRecord, ModelVersion
    from shipyard.registry.registry import Registry

__all__ = ["MonitorReport", "monitor_report"]

_BUCKET_RESAMPLES = 100


@dataclass(frozen=True, kw_only=True)
class MonitorReport:
    """What one version's traffic looked like over a window, and how it compares.

    Args:
        ref: the version reported on (`fraud:3`).
        since: the window's start (inclusive).
        until: the window's end (exclusive).
        requests: requests answered or rejected in the window.
        rows: rows served.
        rejected: requests rejected by the contract or the model.
        error_rate: the share of requests rejected, over the whole window.
        latency_ms: p50, p95 and p99 of the served requests' latency over the window.
        drift: data and prediction drift against the reference, or None without a reference.
        performance: scores on the labelled rows against the evaluation, or None without labels.
        detections: detector signals on the error stream, with their time.
        estimate: the label-free accuracy estimate on the rows without labels (classifiers).
        timeline: one entry per bucket of the window.
        versions: rows served per version of the model in the window (the others too).
        set_aside: labels of served rows that cannot be used (stored before labels were checked,
            or against another version's classes): how many, and per reason how many and examples.
        seconds: how long the report took.
        weights: the importance the dataset verdict is weighted by: its source, or why it is
            unweighted.
    """

    ref: str
    name: str
    version: int
    task: str
    since: datetime
    until: datetime
    requests: int
    rows: int
    rejected: int
    error_rate: float | None
    latency_ms: Mapping[str, float] | None
    drift: DriftReport | None
    performance: Mapping[str, Any] | None
    detections: tuple[Mapping[str, Any], ...]
    estimate: Mapping[str, Any] | None
    timeline: tuple[Mapping[str, Any], ...]
    versions: Mapping[int, int] = field(default_factory=dict)
    set_aside: Mapping[str, Any] = field(default_factory=lambda: {"labels": 0, "reasons": []})
    seconds: float = 0.0
    weights: Weights = field(default_factory=lambda: Weights(None, None))

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-safe data."""
        out: dict[str, Any] = json_safe(
            {
                "ref": self.ref,
                "name": self.name,
                "version": self.version,
                "task": self.task,
                "since": self.since.isoformat(),
                "until": self.until.isoformat(),
                "requests": self.requests,
                "rows": self.rows,
                "rejected": self.rejected,
                "error_rate": self.error_rate,
                "latency_ms": self.latency_ms,
                "drift": self.drift.to_dict() if self.drift is not None else None,
                "performance": self.performance,
                "detections": list(self.detections),
                "estimate": self.estimate,
                "timeline": list(self.timeline),
                "versions": {str(k): v for k, v in self.versions.items()},
                "set_aside": self.set_aside,
                "seconds": self.seconds,
                "importance": self.weights.to_dict(),
            }
        )
        return out


def monitor_report(
    registry: Registry | None,
    ref: str | ModelRef,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    window: timedelta = timedelta(days=1),
    buckets: int = 24,
    settings: DriftSettings | None = None,
    resamples: int = 200,
    importance: Mapping[str, float] | None = None,
) -> MonitorReport:
    """Report on one version's traffic in [since, until) from the prediction log.

    Args:
        registry: where the version, its reference profile, evaluations and labels are (the
            default registry from the environment when None).
        ref: `fraud:3` or `fraud@production` for that version; `fraud` for the version that
            served the most rows in the window.
        since: the window's start; `until - window` when None.
        until: the window's end; now when None.
        window: the window's length when `since` is None.
        buckets: how many equal parts the timeline has.
        settings: drift thresholds; the defaults when None.
        resamples: bootstrap resamples for the confidence intervals.
        importance: importance per feature for the dataset verdict; when None, the version's
            own, stored at registration (`monitoring.importance`; unweighted without one).

    Raises:
        MonitoringError: the window is empty or inverted.
        NotFoundError: no such model or version.
    """
    started = time.perf_counter()
    if registry is None:
        from shipyard.registry.default import default_registry

        registry = default_registry()
    until = (until or datetime.now(UTC)).astimezone(UTC)
    since = (since or until - window).astimezone(UTC)
    if since >= until:
        raise MonitoringError(
            f"the window starts at {since.isoformat()} but ends before it, at {until.isoformat()}"
        )
    if not 1 <= buckets <= 1000:
        raise MonitoringError(f"buckets must be from 1 to 1000; got {buckets}")
    parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
    events = read_events(
        registry.settings.store_url, parsed.name, since=since, until=until, cipher=registry.artifacts.cipher
    )
    versions = rows_per_version(events)
    version = _pick(registry, parsed, versions)
    if "version" in events.column_names:
        events = events.filter(pc.equal(events["version"], version.version))
    report = _Window(
        registry,
        version=version,
        events=events,
        since=since,
        until=until,
        buckets=buckets,
        settings=settings or DriftSettings(),
        resamples=resamples,
    )
    return report.build(versions, importance, started)


class _Window:
    def __init__(
        self,
        registry: Registry,
        *,
        version: ModelVersion,
        events: pa.Table,
        since: datetime,
        until: datetime,
        buckets: int,
        settings: DriftSettings,
        resamples: int,
    ) -> None:
        self.registry = registry
        newest = registry.results.evaluations(version.ref, limit=1)
        self.evaluation = newest[0] if newest else None  # the baseline of performance and calibration
        self.version = version
        self.since, self.until = since, until
        self.buckets = buckets
        self.settings = settings
        self.resamples = resamples
        self.width = (until - since) / buckets
        n = events.num_rows
        column = events.column_names
        self.status = events["status"].to_numpy(zero_copy_only=False) if n else np.array([], dtype=object)
        self.times = (
            events["time"].cast(pa.int64()).to_numpy() / 1e6 if n else np.array([], dtype=np.float64)
        )  # seconds since the epoch
        start = since.timestamp()
        self.bucket = np.clip(
            ((self.times - start) / self.width.total_seconds()).astype(np.int64), 0, buckets - 1
        )
        rows = events["row"].to_numpy(zero_copy_only=False) if n else np.array([])
        self.first = np.asarray(pd.isna(rows) | (pd.Series(rows).fillna(0).to_numpy() == 0), dtype=bool)
        self.ok = self.status == "ok"
        self.latency = events["latency_ms"].to_numpy(zero_copy_only=False) if n else np.array([])
        self.request_ids = events["request_id"].to_numpy(zero_copy_only=False) if n else np.array([])
        self.rows = rows
        ok_events = events.filter(pa.array(self.ok)) if n else events
        self.features = struct_batch(ok_events, "features", column)
        self.outputs = struct_columns(ok_events, "outputs", column)
        self.ok_index = np.flatnonzero(self.ok)

    def build(
        self, versions: Mapping[int, int], importance: Mapping[str, float] | None, started: float
    ) -> MonitorReport:
        version = self.version
        reference = version.profile
        drift = None
        bucket_drift: dict[int, DriftReport] = {}
        weights = weights_of(version) if importance is None else Weights(dict(importance), "given")
        importance = weights.importance
        if reference is not None and self.features is not None:
            current = reference.profile(self.features, outputs=self.outputs)
            drift = compare(reference, current, settings=self.settings, importance=importance)
            ok_buckets = self.bucket[self.ok_index]
            for b in np.unique(ok_buckets):
                rows = np.flatnonzero(ok_buckets == b)
                if len(rows) >= self.settings.defaults.min_rows:
                    part = reference.profile(self.features.take(rows), outputs=take_rows(self.outputs, rows))
                    bucket_drift[int(b)] = compare(
                        reference, part, settings=self.settings, importance=importance, threads=1
                    )
        labelled, set_aside = self._labelled()
        perf, detections, per_bucket_perf = self._performance(labelled)
        estimate, per_bucket_estimate = self._estimate(labelled)
        timeline = self._timeline(bucket_drift, per_bucket_perf, per_bucket_estimate)
        return MonitorReport(
            ref=str(version.ref),
            name=version.name,
            version=version.version,
            task=version.contract.task or "unknown",
            since=self.since,
            until=self.until,
            requests=int(self.first.sum()),
            rows=int(self.ok.sum()),
            rejected=int((self.first & ~self.ok).sum()),
            error_rate=float((self.first & ~self.ok).sum() / self.first.sum()) if self.first.any() else None,
            latency_ms=latency_quantiles(self.latency[self.first & self.ok]),
            drift=drift,
            performance=perf,
            detections=tuple(detections),
            estimate=estimate,
            timeline=tuple(timeline),
            versions=dict(versions),
            set_aside=set_aside,
            seconds=time.perf_counter() - started,
            weights=weights,
        )

    # -- labels -----------------------------------------------------------------------------------
    def _labelled(self) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Served rows with a usable label (position among the ok rows, the label as the model's
        class), and the labels set aside: labels stored before they were checked may not fit."""
        none: dict[str, Any] = {"labels": 0, "reasons": []}
        empty = pd.DataFrame(columns=["position", "label"])
        if not len(self.ok_index):
            return empty, none
        labels = FeedbackStore(self.registry).labels(since=self.since)
        if labels.num_rows == 0:
            return empty, none
        served = pd.DataFrame(
            {
                "request_id": self.request_ids[self.ok_index],
                "row": pd.Series(self.rows[self.ok_index]).astype("int64").to_numpy(),
                "position": np.arange(len(self.ok_index)),
            }
        )
        table = labels.to_pandas()[["request_id", "row", "label"]]
        table["row"] = table["row"].astype("int64")
        joined = served.merge(table, on=["request_id", "row"], how="inner").sort_values("position")
        contract = self.version.contract
        fitted = [fit_label(v, contract) for v in decode_labels(joined["label"].tolist())]
        usable = np.array([why is None for _, why in fitted], dtype=bool)
        reasons: dict[str, list[Any]] = {}
        expected = (
            "not a finite number"
            if contract.task == "regression"
            else f"not one of the classes {list(contract.classes or ())}"
        )
        for (_, why), raw in zip(fitted, joined["label"].tolist(), strict=True):
            if why is not None:
                reasons.setdefault(expected, []).append(raw)
        joined = joined[usable].copy()
        joined["label"] = [value for value, why in fitted if why is None]
        set_aside = {
            "labels": int((~usable).sum()),
            "reasons": [
                {"reason": k, "labels": len(v), "examples": sorted(set(v))[:5]} for k, v in reasons.items()
            ],
        }
        return joined, set_aside

    def _performance(
        self, labelled: pd.DataFrame
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], dict[int, dict[str, Any]]]:
        if labelled.empty or self.outputs is None:
            return None, [], {}
        version = self.version
        task = version.contract.task or "classification"
        classes = list(version.contract.classes) if version.contract.classes is not None else None
        positions = labelled["position"].to_numpy(dtype=np.int64)
        outputs = take_rows(self.outputs, positions)
        assert outputs is not None
        truth = labelled["label"].tolist()
        try:
            overall = performance(task, classes, truth, outputs, resamples=self.resamples)
        except ValueError as exc:
            raise MonitoringError(f"the labels of {version.ref} do not fit the model: {exc}") from None
        errors = overall.pop("errors")
        times = self.times[self.ok_index][positions]
        detections = [
            {
                "detector": d.detector,
                "kind": d.kind,
                "index": d.index,
                "time": datetime.fromtimestamp(float(times[d.index]), UTC).isoformat(),
                "bucket": int(self.bucket[self.ok_index][positions][d.index]),
            }
            for d in detect(errors, binary=task == "classification")
        ]
        baseline, evaluation_id = _baseline(self.evaluation), self.evaluation.id if self.evaluation else None
        overall["baseline"] = baseline
        overall["evaluation_id"] = evaluation_id
        overall["change"] = {k: v - baseline[k] for k, v in overall["metrics"].items() if k in baseline}
        overall["served_rows"] = int(self.ok.sum())
        overall["labelled_share"] = len(positions) / max(int(self.ok.sum()), 1)
        per_bucket: dict[int, dict[str, Any]] = {}
        buckets = self.bucket[self.ok_index][positions]
        for b in np.unique(buckets):
            rows = np.flatnonzero(buckets == b)
            part = performance(
                task,
                classes,
                [truth[i] for i in rows],
                {k: v[rows] for k, v in outputs.items()},
                resamples=_BUCKET_RESAMPLES if len(rows) > 1 else 0,
            )
            part.pop("errors")
            per_bucket[int(b)] = part
        return overall, detections, per_bucket

    def _estimate(self, labelled: pd.DataFrame) -> tuple[dict[str, Any] | None, dict[int, float]]:
        contract = self.version.contract
        if contract.task != "classification" or contract.classes is None or self.outputs is None:
            return None, {}
        unlabelled = np.ones(len(self.ok_index), dtype=bool)
        if not labelled.empty:
            unlabelled[labelled["position"].to_numpy(dtype=np.int64)] = False
        rows = np.flatnonzero(unlabelled)
        reliability = _reliability(self.evaluation)
        estimate = estimate_accuracy(
            list(contract.classes), take_rows(self.outputs, rows) or {}, reliability=reliability
        )
        per_bucket: dict[int, float] = {}
        if estimate is not None:
            buckets = self.bucket[self.ok_index][rows]
            for b in np.unique(buckets):
                part = rows[buckets == b]
                got = estimate_accuracy(
                    list(contract.classes), take_rows(self.outputs, part) or {}, reliability=reliability
                )
                if got is not None:
                    per_bucket[int(b)] = got["accuracy"]
        return estimate, per_bucket

    # -- timeline -----------------------------------------------------------------------------------
    def _timeline(
        self,
        drift: Mapping[int, DriftReport],
        perf: Mapping[int, Mapping[str, Any]],
        estimate: Mapping[int, float],
    ) -> list[dict[str, Any]]:
        out = []
        for b in range(self.buckets):
            start = self.since + self.width * b
            mine = self.bucket == b
            requests = mine & self.first
            latency = self.latency[requests & self.ok]
            n_requests = int(requests.sum())
            errors = int((requests & ~self.ok).sum())
            entry: dict[str, Any] = {
                "start": start.isoformat(),
                "end": (start + self.width).isoformat(),
                "requests": n_requests,
                "rows": int((mine & self.ok).sum()),
                "errors": errors,
                "error_rate": errors / n_requests if n_requests else None,
                "latency_ms": latency_quantiles(latency),
            }
            if b in drift:
                report = drift[b]
                entry["drift_share"] = report.share
                entry["drifted_features"] = report.drifted_features
                entry["max_psi"] = max(
                    (float(c.stats.get("psi") or 0.0) for c in report.features), default=None
                )
            if b in perf:
                entry["performance"] = perf[b]
            if b in estimate:
                entry["estimated_accuracy"] = estimate[b]
            out.append(entry)
        return out


def _baseline(evaluation: EvaluationRecord | None) -> dict[str, float]:
    metrics = evaluation.body.get("metrics", {}) if evaluation is not None else {}
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _reliability(evaluation: EvaluationRecord | None) -> Mapping[str, Any] | None:
    curve = evaluation.body.get("metrics", {}).get("reliability_quantile") if evaluation is not None else None
    return curve if isinstance(curve, Mapping) else None


def _pick(registry: Registry, ref: ModelRef, versions: Mapping[int, int]) -> ModelVersion:
    if ref.version is not None or ref.alias is not None:
        return registry.get(ref)
    if versions:
        busiest = max(versions, key=lambda v: (versions[v], v))
        return registry.get(ModelRef(ref.name, version=busiest))
    return registry.get(ref)
