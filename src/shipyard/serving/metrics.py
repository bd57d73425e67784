"""Serving metrics in Prometheus form, summed over the worker processes of one server.

Each worker counts in plain dictionaries (an increment is a dict update, cheap enough for the hot
path) and, once a second, writes a snapshot to the server's run folder under a temporary name
and a rename, with its process's CPU time, memory and file descriptors. `/metrics` in any worker
renders its own live figures plus every other worker's latest snapshot (`exposition.py`), so the
figures of other workers are at most `snapshot_seconds` old.

Every label's values are bounded by what the server serves, never by what a caller writes: a
request can name any model, and a series per name would let anyone grow `/metrics` without
limit. The names served (a model, or a deployment) and their versions are `track`ed; a request
counted for a name or version not tracked is counted under `UNKNOWN` instead (the empty string
stays: a request that named no model, such as one to an unknown path). Every other figure is
counted or set by the server for a model it serves. A served name's series carry the registry
model as `model` and, for a deployment, its name as `deployment` ("" for a model served by
reference), so a model's traffic adds up over the deployments that serve it. The other labels
take values from fixed sets: protocol, status (an HTTP status or a gRPC code name), outcome,
role, flavor, worker; paths and methods are no labels at all.
"""

from __future__ import annotations

import bisect
import functools
import json
import os
import resource
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.monitoring.live import LiveProfiles
from shipyard.registry.records import ModelVersion

if TYPE_CHECKING:  # served.py imports this module
    from shipyard.serving.served import ServedModel

__all__ = ["LATENCY_BUCKETS", "ROWS_BUCKETS", "SPECS", "UNKNOWN", "Metrics", "Series", "outcome_of"]

UNKNOWN = "__unknown__"  # the label value of every model or version not served (no name can be it)

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
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
Series = tuple[str, str]
"""The `model` and `deployment` labels of a served name's figures."""

_SERVED = ("model", "deployment")
_ROWS = tuple(float(b) for b in ROWS_BUCKETS)

SPECS: dict[str, tuple[str, str, Labels, tuple[float, ...] | None]] = {
    "shipyard_requests": (
        "counter",
        "Requests answered, by model, deployment, version, protocol, status (the protocol's own) "
        "and outcome (ok, client_error or server_error, alike for every protocol).",
        (*_SERVED, "version", "protocol", "status", "outcome"),
        None,
    ),
    "shipyard_request_duration_seconds": (
        "histogram",
        "Time from a request's arrival to its answer.",
        (*_SERVED, "version", "protocol", "outcome"),
        LATENCY_BUCKETS,
    ),
    "shipyard_adaptive_batch_queue_seconds": (
        "histogram",
        "Time a request waited in the adaptive batcher for its model call to start.",
        _SERVED,
        LATENCY_BUCKETS,
    ),
    "shipyard_model_call_seconds": (
        "histogram",
        "Time of one model call: the merged requests validated by the contract and predicted "
        "(what the model costs, apart from the server's time and the queue's).",
        (*_SERVED, "version"),
        LATENCY_BUCKETS,
    ),
    "shipyard_adaptive_batch_rows": (
        "histogram",
        "Rows per model call after adaptive batching of requests.",
        _SERVED,
        _ROWS,
    ),
    "shipyard_adaptive_batch_requests": (
        "histogram",
        "Requests merged into one model call by adaptive batching.",
        _SERVED,
        _ROWS,
    ),
    "shipyard_predictions": (
        "counter",
        "Rows predicted, by model, deployment and version.",
        (*_SERVED, "version"),
        None,
    ),
    "shipyard_inflight_requests": (
        "gauge",
        "Prediction and explanation requests being served right now (operations routes such as "
        "/metrics are not counted).",
        _SERVED,
        None,
    ),
    "shipyard_model_load_seconds": (
        "gauge",
        "Time to load and warm up the version being served.",
        (*_SERVED, "version"),
        None,
    ),
    "shipyard_model_ready": (
        "gauge",
        "1 when the version is loaded, warmed up and answering.",
        (*_SERVED, "version"),
        None,
    ),
    "shipyard_model_info": (
        "gauge",
        "1 for each version answering, with its flavor.",
        (*_SERVED, "version", "flavor"),
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
        (*_SERVED, "version", "outcome"),
        None,
    ),
    "shipyard_deployment_generation": (
        "gauge",
        "The generation of the deployment's arms this worker routes by.",
        _SERVED,
        None,
    ),
    "shipyard_arm_weight": (
        "gauge",
        "Share of requests (a shadow: of copies) each arm of a deployment gets, from 0 to 1.",
        (*_SERVED, "version", "role"),
        None,
    ),
    "shipyard_workers": (
        "gauge",
        "Worker processes that published their figures within the last three snapshots.",
        (),
        None,
    ),
    "shipyard_build_info": (
        "gauge",
        "1, with the Shipyard and Python versions serving.",
        ("version", "python"),
        None,
    ),
}
"""Every figure of the server: name -> (type, help, label names, buckets of a histogram)."""


# How a gauge combines over workers (sum unless named): readiness and generation show the
# laggard, so a version counts as ready, and a generation as reached, only once every worker has it.
_GAUGE_MERGE: dict[str, Any] = {
    "shipyard_model_ready": min,
    "shipyard_deployment_generation": min,
    "shipyard_model_load_seconds": max,
    "shipyard_arm_weight": max,
    "shipyard_model_info": max,
}

_CLIENT_ERRORS = (
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "OUT_OF_RANGE",
    "ALREADY_EXISTS",
    "CANCELLED",
)
_SERVER_ERRORS = (
    "INTERNAL",
    "UNAVAILABLE",
    "UNKNOWN",
    "DEADLINE_EXCEEDED",
    "UNIMPLEMENTED",
    "DATA_LOSS",
    "ABORTED",
)
# status -> outcome: every gRPC code name, and each HTTP status once it has been seen (the server's
# own answers, a bounded set), so the hot path makes one dict lookup.
_OUTCOMES = {
    "OK": "ok",
    **dict.fromkeys(_CLIENT_ERRORS, "client_error"),
    **dict.fromkeys(_SERVER_ERRORS, "server_error"),
}


def outcome_of(status: str) -> str:
    """`ok`, `client_error` or `server_error`: what a request answered with `status` (an HTTP
    status, or a gRPC code name) came to, alike for every protocol, so one alert covers them all.

    A client gone before its answer (499), a rate limit (429, RESOURCE_EXHAUSTED) and a call the
    client cancelled are the client's; a deadline the server missed is the server's.

    Raises:
        ValueError: `status` is neither.
    """
    outcome = _OUTCOMES.get(status)
    if outcome is None:
        if not status.isdigit():
            raise ValueError(f"status {status!r} is neither an HTTP status nor a gRPC code name")
        code = int(status)
        outcome = _OUTCOMES[status] = "ok" if code < 400 else "client_error" if code < 500 else "server_error"
    return outcome


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
        self.running: dict[str, int] = {}  # a served name (or UNKNOWN, "") -> its requests in flight
        self.served: dict[str, tuple[Series, set[str]]] = {}  # name -> its labels, versions counted
        self.live: LiveProfiles | None = None
        self.drift_minutes = 15
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Snapshots are written in the order they are taken (the publishing thread and a scrape
        # both write), so the file never goes back to older figures.
        self._publishing = threading.Lock()

    def track(self, served: ServedModel, version: ModelVersion) -> None:
        """Count requests to `served` and this version of it under their own label values from
        now on, and show the version in `shipyard_model_info`."""
        number = str(version.version)
        self.served.setdefault(served.name, (served.series, set()))[1].add(number)
        self.set("shipyard_model_info", (*served.series, number, version.flavor), 1.0)

    def retire(self, served: ServedModel, version: int) -> None:
        """This version of `served` stopped answering: not ready, and gone from `shipyard_model_info`
        (requests still queued for it are counted under it as before)."""
        labels = (*served.series, str(version))
        self.set("shipyard_model_ready", labels, 0.0)
        info = self.gauges.get("shipyard_model_info", {})
        for key in [k for k in info if k[:3] == labels]:
            del info[key]

    def series_of(self, name: str) -> Series:
        """The `model` and `deployment` labels of a name a request went by: a served name's own,
        `UNKNOWN`'s for any other, and empty ones for none."""
        known = self.served.get(name)
        if known is not None:
            return known[0]
        return (UNKNOWN if name else "", "")

    # -- the hot path ---------------------------------------------------------------------------
    def begin(self, name: str) -> str:
        """Count a request for `name` in flight; pass what this returns to `end` once answered."""
        key = name if not name or name in self.served else UNKNOWN
        self.running[key] = self.running.get(key, 0) + 1
        return key

    def end(self, key: str) -> None:
        """The request `begin` returned `key` for is answered."""
        self.running[key] -= 1

    def request(self, name: str, version: str, protocol: str, status: str, seconds: float) -> None:
        """Count a request a transport answered in `seconds`, by the name and version it named (a
        name or version not served counted as `UNKNOWN`) and its status (HTTP or gRPC)."""
        known = self.served.get(name)
        if known is None:
            series, version = (UNKNOWN if name else "", ""), ""
        else:
            series, versions = known
            if version and version not in versions:
                version = UNKNOWN
        outcome = outcome_of(status)
        self.inc("shipyard_requests", (*series, version, protocol, status, outcome))
        self.observe("shipyard_request_duration_seconds", (*series, version, protocol, outcome), seconds)

    def inc(self, name: str, labels: Labels, value: float = 1.0) -> None:
        """Add `value` to a counter."""
        series = self.counters.setdefault(name, {})
        series[labels] = series.get(labels, 0.0) + value

    def set(self, name: str, labels: Labels, value: float) -> None:
        """Set a gauge."""
        self.gauges.setdefault(name, {})[labels] = value

    def set_total(self, name: str, labels: Labels, value: float) -> None:
        """Set a counter to a running total kept elsewhere (such as the event log's dropped rows)."""
        self.counters.setdefault(name, {})[labels] = value

    def observe(self, name: str, labels: Labels, value: float) -> None:
        """Record one observation in a histogram."""
        series = self.histograms.setdefault(name, {})
        cells = series.get(labels)
        buckets = SPECS[name][3]
        assert buckets is not None
        if cells is None:
            cells = series[labels] = [0.0] * (len(buckets) + 3)
        cells[bisect.bisect_left(buckets, value)] += 1
        cells[-2] += value
        cells[-1] += 1

    # -- sharing between workers ----------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """This worker's figures as plain data, with its process's."""
        gauges = {k: dict(v) for k, v in self.gauges.items()}
        inflight = gauges["shipyard_inflight_requests"] = {}
        for key, count in list(self.running.items()):
            series = self.series_of(key)
            inflight[series] = inflight.get(series, 0.0) + count
        return {
            "counters": _encode(self.counters),
            "gauges": _encode(gauges),
            "histograms": _encode(self.histograms),
            "worker": self.worker,
            "process": process_figures(),
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
            self.running.clear()
            self.publish()

    def _run(self) -> None:
        while not self._stop.wait(self.snapshot_seconds):
            self.publish()

    def merged(self) -> dict[str, Any]:
        """Every worker's figures combined (summed, or as `_GAUGE_MERGE` says): this worker live, the
        others from their snapshots; and the process figures of each live worker, by its number.

        This worker publishes what it shows before it shows it: a later scrape answered by another
        worker then reads these figures or newer ones, so a counter never goes down between two
        scrapes, whichever workers answer them.
        """
        now = time.time()
        own = self.publish()
        snapshots = [own]
        # worker -> (when, figures): a live worker's latest, so a slot restarted moments ago shows once
        processes: dict[str, tuple[float, dict[str, float]]] = {str(self.worker): (now, own["process"])}
        if self.run_dir is not None:
            for path in sorted(self.run_dir.glob("metrics-*.json")):
                if path.name == self._file_name:
                    continue
                try:
                    written = path.stat().st_mtime
                    snapshot = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue  # a worker mid-rename; its figures come with the next scrape
                snapshots.append(snapshot)
                worker = str(snapshot["worker"])
                if now - written < 3 * self.snapshot_seconds and written > processes.get(worker, (0.0,))[0]:
                    processes[worker] = (written, snapshot["process"])
        total: dict[str, Any] = {
            "counters": {},
            "gauges": {},
            "histograms": {},
            "workers": len(processes),
            "processes": {worker: figures for worker, (_, figures) in sorted(processes.items())},
        }
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


def process_figures() -> dict[str, float]:
    """This process's CPU time, memory, start time and file descriptors, read as prometheus-client's
    process collector reads them (from Linux's /proc; elsewhere there are none)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            # The fields after the command's closing parenthesis, from the state (field 3) on.
            fields = f.read().rpartition(b")")[2].split()
        fds = len(os.listdir("/proc/self/fd"))
        booted = _boot_time()
    except OSError:
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    return {
        "cpu_seconds": (int(fields[11]) + int(fields[12])) / ticks,
        "resident_memory_bytes": float(int(fields[21]) * os.sysconf("SC_PAGE_SIZE")),
        "virtual_memory_bytes": float(fields[20]),
        "start_time_seconds": booted + int(fields[19]) / ticks,
        "open_fds": float(fds),
        "max_fds": float(resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
    }


@functools.cache
def _boot_time() -> float:
    """When the machine booted (Unix time): process start times count from it."""
    with open("/proc/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    raise OSError("/proc/stat has no btime line")


def _encode(data: Mapping[str, Mapping[Labels, Any]]) -> dict[str, list[list[Any]]]:
    return {name: [[list(k), v] for k, v in series.items()] for name, series in data.items()}


def _decode(data: Mapping[str, list[list[Any]]]) -> dict[str, dict[Labels, Any]]:
    return {name: {tuple(k): v for k, v in series} for name, series in data.items()}
