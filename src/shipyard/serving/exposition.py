"""`/metrics` as Prometheus text: the merged figures of every worker, each worker's process, the
build, and live drift, rendered by prometheus-client from a registry made per scrape (never the
global one). prometheus-client is imported at the first scrape, not when a worker starts."""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Any

from shipyard.monitoring.live import LiveProfiles
from shipyard.serving.metrics import SPECS, Metrics, Series

if TYPE_CHECKING:
    from prometheus_client.core import Metric

__all__ = ["render"]

# A worker's process figures: the key `metrics.process_figures` gives -> (name, type, help).
# The names are the usual ones (prometheus-client's process collector), with a `worker` label.
_PROCESS = {
    "cpu_seconds": ("process_cpu_seconds", "counter", "User and system CPU time of the worker, in seconds."),
    "resident_memory_bytes": ("process_resident_memory_bytes", "gauge", "Resident memory of the worker."),
    "virtual_memory_bytes": ("process_virtual_memory_bytes", "gauge", "Virtual memory of the worker."),
    "start_time_seconds": (
        "process_start_time_seconds",
        "gauge",
        "When the worker started, in seconds since the Unix epoch.",
    ),
    "open_fds": ("process_open_fds", "gauge", "Open file descriptors of the worker."),
    "max_fds": ("process_max_fds", "gauge", "The most file descriptors the worker may open."),
}


def render(metrics: Metrics) -> bytes:
    """The Prometheus text exposition of every worker's figures, and of live drift."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(metrics.merged()))
    if metrics.live is not None:
        registry.register(_DriftCollector(metrics.live, metrics.drift_minutes, metrics.series_of))
    return generate_latest(registry)


@cache
def _build() -> list[str]:
    return [package_version("shipyard"), platform.python_version()]


class _Collector:
    def __init__(self, merged: Mapping[str, Any]) -> None:
        self.merged = merged

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        for name, (kind, doc, label_names, buckets) in SPECS.items():
            family: Metric
            if kind == "counter":
                family = CounterMetricFamily(name, doc, labels=label_names)
                for labels, value in self.merged["counters"].get(name, {}).items():
                    family.add_metric(list(labels), value)
            elif kind == "gauge":
                family = GaugeMetricFamily(name, doc, labels=label_names)
                if name == "shipyard_workers":
                    family.add_metric([], float(self.merged["workers"]))
                elif name == "shipyard_build_info":
                    family.add_metric(_build(), 1.0)
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
        yield from self._processes()

    def _processes(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        workers: Mapping[str, Mapping[str, float]] = self.merged["processes"]
        for key, (name, kind, doc) in _PROCESS.items():
            make = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = make(name, doc, labels=("worker",))
            for worker, figures in workers.items():
                if key in figures:
                    family.add_metric([worker], figures[key])
            yield family


class _DriftCollector:
    """Drift of the live traffic of every served version against its reference, at scrape time."""

    def __init__(self, live: LiveProfiles, minutes: int, series_of: Callable[[str], Series]) -> None:
        self.live = live
        self.minutes = minutes
        self.series_of = series_of

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        labels = ("model", "deployment", "version")
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
        for name, version in self.live.tracked():
            report = self.live.drift(name, version, self.minutes)
            if report is None:
                continue
            key = [*self.series_of(name), str(version)]
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
