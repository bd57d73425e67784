"""Serving metrics in Prometheus form, summed over the worker processes of one server.

Each worker counts in plain dictionaries (an increment is a dict update, cheap enough for the hot
path) and, once a second, writes a snapshot to the server's run folder under a temporary name
and a rename. `/metrics` in any worker renders its own live figures plus every other worker's
latest snapshot, so the figures of other workers are at most `snapshot_seconds` old. The text is
produced by prometheus-client from a registry made per app, never the global one.

Every label's values are bounded by what the server serves, never by what a caller writes: a
request can name any model, and a series per name would let anyone grow `/metrics` without
limit. The models (and versions) served are `track`ed; a request counted for a model or version
not tracked is counted under `UNKNOWN` instead (the empty string stays: a request that named no
model, such as one to an unknown path). Every other figure is counted or set by the server for
a model it serves. The other labels take values from fixed sets: protocol, status (an HTTP
status or a gRPC code name), outcome, role; paths and methods are no labels at all.
"""

from __future__ import annotations

import bisect
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.monitoring.live import LiveProfiles

if TYPE_CHECKING:  # prometheus-client is imported at the first scrape, not when a worker starts
    from prometheus_client.core import Metric

__all__ = ["LATENCY_BUCKETS", "ROWS_BUCKETS", "UNKNOWN", "Metrics"]

UNKNOWN = "__unknown__"  # the label value of every model or version not served (no name can be it)

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)

Labels = tuple[str, ...]

# name -> (type, help, label names, buckets or None)
_SPECS: dict[str, tuple[str, str, Labels, tuple[float, ...] | None]] = {
    "shipyard_requests": (
        "counter",
        "Requests answered, by model, version, protocol and status.",
        ("model", "version", "protocol", "status"),
        None,
    ),
    "shipyard_request_duration_seconds": (
        "histogram",
        "Time from a request's arrival to its answer.",
        ("model", "protocol"),
        LATENCY_BUCKETS,
    ),
    "shipyard_queue_seconds": (
        "histogram",
        "Time a request waited for its batch to start.",
        ("model",),
        LATENCY_BUCKETS,
    ),
    "shipyard_batch_rows": (
        "histogram",
        "Rows per model call after adaptive batching.",
        ("model",),
        tuple(float(b) for b in ROWS_BUCKETS),
    ),
    "shipyard_batch_requests": (
        "histogram",
        "Requests merged into one model call.",
        ("model",),
        tuple(float(b) for b in ROWS_BUCKETS),
    ),
    "shipyard_predictions": (
        "counter",
        "Rows predicted, by model and version.",
        ("model", "version"),
        None,
    ),
    "shipyard_inflight_requests": (
        "gauge",
        "Requests being served right now.",
        (),
        None,
    ),
    "shipyard_model_load_seconds": (
        "gauge",
        "Time to load and warm up the version being served.",
        ("model", "version"),
        None,
    ),
    "shipyard_model_ready": (
        "gauge",
        "1 when the version is loaded, warmed up and answering.",
        ("model", "version"),
        None,
    ),
    "shipyard_events_dropped": (
        "counter",
        "Prediction-log rows dropped because the writer fell behind.",
        (),
        None,
    ),
    "shipyard_shadow_requests": (
        "counter",
        "Copies of requests for a shadow arm, by outcome: answered, failed, or shed (queue full).",
        ("model", "version", "outcome"),
        None,
    ),
    "shipyard_deployment_generation": (
        "gauge",
        "The generation of the deployment's arms this worker routes by.",
        ("model",),
        None,
    ),
    "shipyard_arm_weight": (
        "gauge",
        "Percent of requests (a shadow: of copies) each arm of a deployment gets.",
        ("model", "version", "role"),
        None,
    ),
    "shipyard_workers": (
        "gauge",
        "Worker processes that published their figures within the last three snapshots.",
        (),
        None,
    ),
}


# The figures a transport counts per request, whose model (and version) it takes from what the
# request named: name -> whether the second label is the version. The service counts the others
# by the served model that answered, so their labels are bounded already.
_BOUNDED: dict[str, bool] = {"shipyard_requests": True, "shipyard_request_duration_seconds": False}


# How a gauge combines over workers (sum unless named): readiness and generation show the
# laggard, so a version counts as ready, and a generation as reached, only once every worker has it.
_GAUGE_MERGE: dict[str, Any] = {
    "shipyard_model_ready": min,
    "shipyard_deployment_generation": min,
    "shipyard_model_load_seconds": max,
    "shipyard_arm_weight": max,
}


class Metrics:
    """The figures of one worker, and the merged view of all workers of a server.

    Args:
        run_dir: the folder shared by the server's workers; None for a single process.
        worker: this worker's number.
        snapshot_seconds: how often this worker publishes its figures to the others.
    """

    def __init__(
        self, run_dir: Path | None = None, *, worker: int = 0, snapshot_seconds: float = 1.0
    ) -> None:
        self.run_dir = run_dir
        self.worker = worker
        self.snapshot_seconds = snapshot_seconds
        self.counters: dict[str, dict[Labels, float]] = {}
        self.gauges: dict[str, dict[Labels, float]] = {}
        # name -> labels -> [bucket counts..., sum, count]
        self.histograms: dict[str, dict[Labels, list[float]]] = {}
        self.inflight = 0
        self.served: dict[str, set[str]] = {}  # model -> versions: the label values counted as they are
        self.live: LiveProfiles | None = None
        self.drift_minutes = 15
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Snapshots are written in the order they are taken (the publishing thread and a scrape
        # both write), so the file never goes back to older figures.
        self._publishing = threading.Lock()

    def track(self, model: str, version: str) -> None:
        """Count `model` and this version of it under their own label values from now on."""
        self.served.setdefault(model, set()).add(version)

    def _bounded(self, name: str, labels: Labels) -> Labels:
        """`labels` with a model (and version) that is not served replaced by `UNKNOWN`."""
        with_version = _BOUNDED.get(name)
        if with_version is None or not labels:
            return labels
        versions = self.served.get(labels[0])
        if versions is None:
            if not labels[0]:
                return labels
            return (UNKNOWN, "", *labels[2:]) if with_version else (UNKNOWN, *labels[1:])
        if with_version and labels[1] and labels[1] not in versions:
            return (labels[0], UNKNOWN, *labels[2:])
        return labels

    # -- the hot path ---------------------------------------------------------------------------
    def inc(self, name: str, labels: Labels, value: float = 1.0) -> None:
        """Add `value` to a counter (an unserved model or version counted as `UNKNOWN`)."""
        labels = self._bounded(name, labels)
        series = self.counters.setdefault(name, {})
        series[labels] = series.get(labels, 0.0) + value

    def set(self, name: str, labels: Labels, value: float) -> None:
        """Set a gauge."""
        self.gauges.setdefault(name, {})[labels] = value

    def set_total(self, name: str, labels: Labels, value: float) -> None:
        """Set a counter to a running total kept elsewhere (such as the event log's dropped rows)."""
        self.counters.setdefault(name, {})[labels] = value

    def observe(self, name: str, labels: Labels, value: float) -> None:
        """Record one observation in a histogram (an unserved model counted as `UNKNOWN`)."""
        labels = self._bounded(name, labels)
        series = self.histograms.setdefault(name, {})
        cells = series.get(labels)
        buckets = _SPECS[name][3]
        assert buckets is not None
        if cells is None:
            cells = series[labels] = [0.0] * (len(buckets) + 3)
        cells[bisect.bisect_left(buckets, value)] += 1
        cells[-2] += value
        cells[-1] += 1

    # -- sharing between workers ----------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """This worker's figures as plain data."""
        gauges = {k: dict(v) for k, v in self.gauges.items()}
        gauges["shipyard_inflight_requests"] = {(): float(self.inflight)}
        return {
            "counters": _encode(self.counters),
            "gauges": _encode(gauges),
            "histograms": _encode(self.histograms),
        }

    def publish(self) -> dict[str, Any]:
        """Write this worker's snapshot for the others (temporary name, then rename), and return it."""
        with self._publishing:
            snapshot = self.snapshot()
            if self.run_dir is not None:
                path = self.run_dir / self._file_name
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(snapshot))
                os.replace(tmp, path)
        return snapshot

    @property
    def _file_name(self) -> str:
        # One file per process, not per worker slot: a worker restarted after a crash starts
        # from zero, and the dead one's last figures stay, so totals never go backwards.
        return f"metrics-{self.worker}-{os.getpid()}.json"

    def start(self) -> Metrics:
        """Publish a snapshot every `snapshot_seconds` in a background thread."""
        if self.run_dir is not None and self._thread is None:
            self.publish()
            self._thread = threading.Thread(target=self._run, name="shipyard-metrics", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop publishing; the last snapshot stays for the workers still running."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.run_dir is not None:
            self.inflight = 0
            self.publish()

    def _run(self) -> None:
        while not self._stop.wait(self.snapshot_seconds):
            self.publish()

    def merged(self) -> dict[str, Any]:
        """Every worker's figures combined (summed, or as `_GAUGE_MERGE` says): this worker live, the
        others from their snapshots.

        This worker publishes what it shows before it shows it: a later scrape answered by another
        worker then reads these figures or newer ones, so a counter never goes down between two
        scrapes, whichever workers answer them.
        """
        snapshots = [self.publish()]
        live = 1
        if self.run_dir is not None:
            now = time.time()
            for path in sorted(self.run_dir.glob("metrics-*.json")):
                if path.name == self._file_name:
                    continue
                try:
                    fresh = now - path.stat().st_mtime < 3 * self.snapshot_seconds
                    snapshots.append(json.loads(path.read_text()))
                except (OSError, ValueError):
                    continue  # a worker mid-rename; its figures come with the next scrape
                live += fresh
        total: dict[str, Any] = {"counters": {}, "gauges": {}, "histograms": {}, "workers": live}
        for snap in snapshots:
            for kind in ("counters", "gauges", "histograms"):
                for name, series in _decode(snap[kind]).items():
                    into = total[kind].setdefault(name, {})
                    for labels, value in series.items():
                        if kind == "histograms":
                            cells = into.setdefault(labels, [0.0] * len(value))
                            for i, v in enumerate(value):
                                cells[i] += v
                        elif labels not in into:
                            into[labels] = value
                        elif kind == "gauges" and name in _GAUGE_MERGE:
                            into[labels] = _GAUGE_MERGE[name](into[labels], value)
                        else:
                            into[labels] += value
        return total

    def render(self) -> bytes:
        """The Prometheus text exposition of every worker's figures, and of live drift."""
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self.merged()))
        if self.live is not None:
            registry.register(_DriftCollector(self.live, self.drift_minutes))
        return generate_latest(registry)


class _Collector:
    def __init__(self, merged: Mapping[str, Any]) -> None:
        self.merged = merged

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        for name, (kind, doc, label_names, buckets) in _SPECS.items():
            family: Metric
            if kind == "counter":
                family = CounterMetricFamily(name, doc, labels=label_names)
                for labels, value in self.merged["counters"].get(name, {}).items():
                    family.add_metric(list(labels), value)
            elif kind == "gauge":
                family = GaugeMetricFamily(name, doc, labels=label_names)
                if name == "shipyard_workers":
                    family.add_metric([], float(self.merged["workers"]))
                for labels, value in self.merged["gauges"].get(name, {}).items():
                    family.add_metric(list(labels), value)
            else:
                assert buckets is not None
                family = HistogramMetricFamily(name, doc, labels=label_names)
                for labels, cells in self.merged["histograms"].get(name, {}).items():
                    cumulative, running = [], 0.0
                    for bound, count in zip((*buckets, float("inf")), cells, strict=False):
                        running += count
                        cumulative.append((_bound(bound), running))
                    family.add_metric(list(labels), cumulative, sum_value=cells[-2])
            yield family


class _DriftCollector:
    """Drift of the live traffic of every served version against its reference, at scrape time."""

    def __init__(self, live: LiveProfiles, minutes: int) -> None:
        self.live = live
        self.minutes = minutes

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        labels = ("model", "version")
        psi = GaugeMetricFamily(
            "shipyard_drift_psi",
            f"Population stability index of each feature over the last {self.minutes} minutes.",
            labels=(*labels, "feature"),
        )
        js = GaugeMetricFamily(
            "shipyard_drift_jensen_shannon",
            f"Jensen-Shannon distance of each feature over the last {self.minutes} minutes.",
            labels=(*labels, "feature"),
        )
        drifted = GaugeMetricFamily(
            "shipyard_drift_feature_drifted",
            "1 when the feature drifted by its thresholds.",
            labels=(*labels, "feature"),
        )
        output_psi = GaugeMetricFamily(
            "shipyard_drift_output_psi",
            "Population stability index of each model output.",
            labels=(*labels, "output"),
        )
        share = GaugeMetricFamily(
            "shipyard_drift_share",
            "Share of drifted features (weighted by importance when known).",
            labels=labels,
        )
        dataset = GaugeMetricFamily(
            "shipyard_drift_dataset", "1 when the data set as a whole drifted.", labels=labels
        )
        rows = GaugeMetricFamily("shipyard_drift_rows", "Rows in the live drift window.", labels=labels)
        for model, version in self.live.tracked():
            report = self.live.drift(model, version, self.minutes)
            if report is None:
                continue
            key = [model, str(version)]
            rows.add_metric(key, float(report.current_rows))
            if not report.judged:
                continue  # like /drift: nothing is published until there are min_rows rows
            for c in (c for c in report.features if c.judged):
                if c.stats.get("psi") is not None:
                    psi.add_metric([*key, c.name], float(c.stats["psi"] or 0.0))
                if c.stats.get("js") is not None:
                    js.add_metric([*key, c.name], float(c.stats["js"] or 0.0))
                drifted.add_metric([*key, c.name], 1.0 if c.drifted else 0.0)
            for c in (c for c in report.outputs if c.judged):
                if c.stats.get("psi") is not None:
                    output_psi.add_metric([*key, c.name], float(c.stats["psi"] or 0.0))
            share.add_metric(key, report.share)
            dataset.add_metric(key, 1.0 if report.dataset_drift else 0.0)
        yield from (psi, js, drifted, output_psi, share, dataset, rows)


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


def _encode(data: Mapping[str, Mapping[Labels, Any]]) -> dict[str, list[list[Any]]]:
    return {name: [[list(k), v] for k, v in series.items()] for name, series in data.items()}


def _decode(data: Mapping[str, list[list[Any]]]) -> dict[str, dict[Labels, Any]]:
    return {name: {tuple(k): v for k, v in series} for name, series in data.items()}
