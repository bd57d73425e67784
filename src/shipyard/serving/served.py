"""What a server answers for: served models, their lanes, and the requests waiting in them.

A `ServedModel` is one name a server answers under (a model reference, or a deployment and its
arms). Each loaded version of it is a `Lane`: the version and the adaptive batcher that merges its
waiting requests (`Pending`) into model calls. What a call runs (`RunBatch`), and the metrics, live
profiles and limits a served model keeps up, are handed in by whoever builds it (the data plane,
`ModelService`); nothing here calls back into it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.core.batch import Array, Predictions
from shipyard.core.refs import ModelRef
from shipyard.errors import ServingError, ShipyardError, UnknownModelError
from shipyard.monitoring.live import LiveProfiles
from shipyard.registry.loaded import LoadedModel
from shipyard.registry.records import ModelVersion
from shipyard.rollout.routing import Router
from shipyard.serving.batcher import AdaptiveBatcher
from shipyard.serving.metrics import Metrics

if TYPE_CHECKING:  # rollout's modules import SQLAlchemy, which a bundle's server skips
    from shipyard.rollout.deployments import Deployment

__all__ = ["Answer", "Columns", "Lane", "Limits", "Pending", "RunBatch", "ServedModel"]

Columns = Mapping[str, Sequence[Any] | Array]


@dataclass(frozen=True, kw_only=True)
class Limits:
    """How much one request may ask, and how requests are batched.

    Args:
        max_body_bytes: the largest request body accepted (413 above it).
        max_rows: the most rows one request may carry (413 above it).
        max_batch_rows: the most rows one model call may take.
        max_wait_ms: how long a queue may wait for more requests under load.
        log_sample: the share of requests written to the prediction log (0 to 1).
        drift_minutes: the window of live traffic that drift on `/metrics` is computed over.
        shadow_queue: copies for a shadow arm waiting or being predicted at most; more are shed
            (and counted), so a slow shadow never holds up the callers.
    """

    max_body_bytes: int = 16 * 1024 * 1024
    max_rows: int = 10_000
    max_batch_rows: int = 256
    max_wait_ms: float = 5.0
    log_sample: float = 1.0
    drift_minutes: int = 15
    shadow_queue: int = 1000


@dataclass(frozen=True, slots=True)
class Answer:
    """A served request: which version answered and what it said."""

    request_id: str
    version: ModelVersion
    predictions: Predictions


@dataclass(slots=True, eq=False)
class Pending:
    """One request waiting in a lane's batcher for its model call, and where its answer goes."""

    columns: Mapping[str, Sequence[Any] | Array]  # the contract's columns, one value per row
    # (`one_value_per_row`: JSON lists as they came, anything else as arrays)
    n_rows: int
    request_id: str
    protocol: str
    arrived: float
    logged: bool
    future: asyncio.Future[Answer]
    queued: float = field(default_factory=time.perf_counter)

    def fail(self, error: BaseException) -> None:
        """Answer with `error` unless answered already; an error that is not Shipyard's own is a
        fault of the server (5xx), told without its text, which may quote the inputs."""
        if self.future.done():
            return
        if not isinstance(error, ShipyardError):
            error = ServingError(
                f"the server failed while answering request {self.request_id} "
                f"({type(error).__name__}); the fault is the server's, not the request's, and its "
                "log has the details"
            )
        self.future.set_exception(error)


RunBatch = Callable[["ServedModel", LoadedModel, Sequence[Pending]], None]
"""A model call: validate and predict the requests a batcher merged for one version of a served
model, answering each of them (`ModelService.run_batch`)."""


class Lane:
    """One loaded version of a served model and the batcher that feeds it.

    Args:
        loaded: the version.
        run: called with the requests of each model call the batcher makes for it.
        limits: the batching settings.
    """

    def __init__(
        self, loaded: LoadedModel, *, run: Callable[[Sequence[Pending]], None], limits: Limits
    ) -> None:
        self.loaded = loaded
        self.batcher: AdaptiveBatcher[Pending] = AdaptiveBatcher(
            run, max_batch_rows=limits.max_batch_rows, max_wait_ms=limits.max_wait_ms
        )


class ServedModel:
    """One name a server answers for: a model reference, or a deployment and its arms.

    A model reference (`fraud@production`) has one lane, the version loaded now. A deployment has
    one lane per arm, every one loaded and warmed before its router can pick it, and a router that
    picks the arm of each request (sticky by a key) and the requests copied to a shadow arm.

    Args:
        ref: what the server was asked to serve (`fraud@production`, `fraud:3`), or the deployment's
            stable version.
        loaded: the version loaded for it (the deployment's stable version).
        run: the model call each of its lanes makes.
        limits: request limits and batching settings.
        metrics: where its readiness and load times are shown.
        live: the live profiles its versions are tracked in, or None to keep none.
        name: the deployment's name, for a deployment; None for a model reference, which
            answers under the model's name.
    """

    def __init__(
        self,
        ref: ModelRef,
        loaded: LoadedModel,
        *,
        run: RunBatch,
        limits: Limits,
        metrics: Metrics,
        live: LiveProfiles | None = None,
        name: str | None = None,
    ) -> None:
        self.ref = ref
        self.name = name or ref.name
        self.model = ref.name  # the prediction log's folder: monitoring reads it by model name
        # The `model` and `deployment` labels of its figures: the registry model, and the name of
        # the deployment ("" for a model reference).
        self.series = (self.model, name or "")
        self.metrics = metrics
        self.live = live
        self._run = run
        self._limits = limits
        self.primary = self._lane(loaded)
        self.lanes: dict[int, Lane] = {loaded.version.version: self.primary}
        self.deployment: Deployment | None = None
        self.router: Router | None = None
        self.key_header: bytes | None = None  # the routing key's header, lower case
        self.key_feature: str | None = None  # or the feature whose first value is the key
        self.ready = False

    def _lane(self, loaded: LoadedModel) -> Lane:
        run = self._run
        return Lane(loaded, run=lambda jobs: run(self, loaded, jobs), limits=self._limits)

    @property
    def loaded(self) -> LoadedModel:
        """The version answering now (a deployment's stable version); its contract decodes requests."""
        return self.primary.loaded

    @property
    def batcher(self) -> AdaptiveBatcher[Pending]:
        """The batcher of the version answering now."""
        return self.primary.batcher

    @property
    def version(self) -> ModelVersion:
        """The version answering now (a deployment's stable version)."""
        return self.primary.loaded.version

    def routing_key(self, header: str | None, columns: Columns) -> str | None:
        """The key that keeps a caller on one arm: the sticky feature's first value, or the header."""
        if self.key_feature is not None:
            values = columns.get(self.key_feature)
            if values is not None and len(values):
                return str(values[0])
            return None
        return header

    def versions(self) -> list[str]:
        """The versions this name answers with, as a request names them."""
        return [str(v) for v in self.lanes]

    def lane(self, key: str | None, version: str | None = None) -> Lane:
        """The lane that answers a request: the version asked for, else the router's pick.

        Raises:
            UnknownModelError: the version asked for left between the routing and the call.
        """
        if version:
            lane = self.lanes.get(int(version)) if version.isdigit() else None
            if lane is None:
                raise UnknownModelError(f"version {version} of {self.name!r} stopped being served just now")
            return lane
        if self.router is None:
            return self.primary
        return self.lanes[self.router.pick(key).version]

    def swap(self, loaded: LoadedModel, load_seconds: float) -> None:
        """Answer with `loaded` from now on; requests already queued finish on the old version."""
        old = self.loaded
        self.primary = self._lane(loaded)
        self.lanes = {loaded.version.version: self.primary}
        metrics, number = self.metrics, str(loaded.version.version)
        metrics.retire(self, old.version.version)
        metrics.track(self, loaded.version)
        metrics.set("shipyard_model_ready", (*self.series, number), 1.0)
        metrics.set("shipyard_model_load_seconds", (*self.series, number), load_seconds)
        if self.live is not None:
            self.live.track(self.name, loaded.version.version, loaded.version.profile)

    def deploy(self, deployment: Deployment, loaded: Mapping[int, LoadedModel]) -> None:
        """Answer by `deployment`'s arms from now on; `loaded` holds every arm's version, warmed.

        Lanes of versions still in the deployment are kept (their queues and batch statistics);
        requests queued on a dropped version finish on it.
        """
        lanes = {v: self.lanes.get(v) or self._lane(model) for v, model in loaded.items()}
        metrics = self.metrics
        for version in self.lanes.keys() - lanes.keys():
            metrics.retire(self, version)
        for version in lanes:
            metrics.track(self, loaded[version].version)
        for version in lanes.keys() - self.lanes.keys():
            metrics.set("shipyard_model_ready", (*self.series, str(version)), 1.0)
            if self.live is not None:
                self.live.track(self.name, version, loaded[version].version.profile)
        kind, _, what = deployment.sticky.partition(":")
        self.key_header = what.lower().encode() if kind == "header" else None
        self.key_feature = what if kind == "feature" else None
        self.lanes = lanes
        self.primary = lanes[deployment.stable.version]
        self.ref = ModelRef(deployment.model, version=deployment.stable.version)
        self.deployment = deployment
        self.router = Router(deployment, ready=lanes.keys())
