"""Live profiles of recent traffic per model version, kept by each serving worker.

The hot path only appends the rows it already has (a list append). A background thread folds
what gathered into one profile per version and minute, on the version's reference edges, so the
minutes, the workers of a server and its replicas add up to the profile of any window. Workers
publish their minutes to the server's run folder (temporary name, then rename) every few seconds;
any worker merges them all when asked for drift, as `/metrics` is.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from shipyard.core.batch import Batch, Predictions
from shipyard.core.profile import Profile
from shipyard.monitoring.drift import DriftReport, compare
from shipyard.monitoring.thresholds import DriftSettings

__all__ = ["LiveProfiles"]

log = logging.getLogger(__name__)

Key = tuple[str, int]  # (model, version)


@dataclass
class _Pending:
    key: Key
    minute: int
    features: Batch
    predictions: Predictions


class LiveProfiles:
    """Per-minute profiles of each served version's recent inputs and outputs.

    Args:
        run_dir: the folder the server's workers share, or None for one process.
        worker: this worker's number.
        keep_minutes: how many minutes are kept.
        fold_seconds: how often pending rows are folded into the profiles.
        publish_seconds: how often this worker's minutes are published for the others.
        settings: drift thresholds for `drift`.
    """

    def __init__(
        self,
        run_dir: Path | None = None,
        *,
        worker: int = 0,
        keep_minutes: int = 60,
        fold_seconds: float = 1.0,
        publish_seconds: float = 5.0,
        settings: DriftSettings | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.worker = worker
        self.keep_minutes = keep_minutes
        self.fold_seconds = fold_seconds
        self.publish_seconds = publish_seconds
        self.settings = settings or DriftSettings()
        self.references: dict[Key, Profile] = {}
        self.minutes: dict[Key, dict[int, Profile]] = {}
        self._pending: list[_Pending] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cache: dict[tuple[Key, int], tuple[float, DriftReport | None]] = {}

    # -- the hot path ---------------------------------------------------------------------------
    def track(self, model: str, version: int, reference: Profile | None) -> None:
        """Keep profiles of `model` version `version` on the edges of `reference`."""
        if reference is not None:
            self.references[(model, version)] = reference

    def append(self, model: str, version: int, served: Sequence[tuple[Batch, Predictions]]) -> None:
        """Queue the rows and outputs of one model call; never blocks on profiling."""
        key = (model, version)
        if key not in self.references or not served:
            return
        minute = int(time.time() // 60)
        for features, predictions in served:
            self._pending.append(_Pending(key, minute, features, predictions))

    # -- the background thread ------------------------------------------------------------------
    def start(self) -> LiveProfiles:
        """Fold and publish in a background thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shipyard-live-profiles", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread, fold what is pending and publish a last time."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.fold()
        self.publish()

    def _run(self) -> None:
        last_publish = 0.0
        while not self._stop.wait(self.fold_seconds):
            try:
                self.fold()
                if time.monotonic() - last_publish >= self.publish_seconds:
                    self.publish()
                    last_publish = time.monotonic()
            except Exception:  # profiling must never take serving down; say so and go on
                log.exception("could not fold the live traffic profiles")

    def fold(self) -> None:
        """Profile what is pending, one pass per version and minute."""
        pending, self._pending = self._pending, []
        groups: dict[tuple[Key, int], list[_Pending]] = {}
        for item in pending:
            groups.setdefault((item.key, item.minute), []).append(item)
        for (key, minute), items in groups.items():
            reference = self.references[key]
            features = Batch.concat([i.features for i in items])
            part = reference.profile(features, Predictions.concat([i.predictions for i in items]))
            with self._lock:
                minutes = self.minutes.setdefault(key, {})
                minutes[minute] = minutes[minute] + part if minute in minutes else part
                oldest = minute - self.keep_minutes
                for m in [m for m in minutes if m <= oldest]:
                    del minutes[m]

    # -- sharing between workers ----------------------------------------------------------------
    def publish(self) -> None:
        """Write this worker's minutes for the others (temporary name, then rename)."""
        if self.run_dir is None:
            return
        with self._lock:
            data = {
                f"{model}\x00{version}": {str(m): p.to_dict() for m, p in minutes.items()}
                for (model, version), minutes in self.minutes.items()
            }
        path = self.run_dir / f"profiles-{self.worker}-{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    def window(self, model: str, version: int, minutes: int = 15) -> Profile | None:
        """The profile of the last `minutes` minutes of every worker, or None before any traffic."""
        key = (model, version)
        reference = self.references.get(key)
        if reference is None:
            return None
        since = int(time.time() // 60) - minutes + 1
        total: Profile | None = None
        for part in self._parts(key, since):
            total = part if total is None else total + part
        return total

    def _parts(self, key: Key, since: int) -> Iterator[Profile]:
        with self._lock:
            mine = [p for m, p in self.minutes.get(key, {}).items() if m >= since]
        yield from mine
        if self.run_dir is None:
            return
        own = f"profiles-{self.worker}-{os.getpid()}.json"
        wanted = f"{key[0]}\x00{key[1]}"
        for path in sorted(self.run_dir.glob("profiles-*.json")):
            if path.name == own:
                continue
            try:
                data = json.loads(path.read_text()).get(wanted, {})
            except (OSError, ValueError):
                continue  # a worker mid-rename; its minutes come with the next read
            for minute, body in data.items():
                if int(minute) >= since:
                    yield Profile.from_dict(body)

    def drift(
        self, model: str, version: int, minutes: int = 15, *, max_age: float = 5.0
    ) -> DriftReport | None:
        """Drift of the last `minutes` minutes against the reference, at most `max_age` seconds old."""
        key = (model, version)
        cached = self._cache.get((key, minutes))
        if cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
        current = self.window(model, version, minutes)
        report = None
        if current is not None and current.rows:
            report = compare(self.references[key], current, settings=self.settings, threads=1)
        self._cache[(key, minutes)] = (time.monotonic(), report)
        return report

    def tracked(self) -> list[Key]:
        """The versions profiled."""
        return list(self.references)
