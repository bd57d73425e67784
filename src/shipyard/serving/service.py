"""The data plane every transport calls: route, batch, validate, predict, log, count.

Transports decode a request into columns and call `ModelService.predict`; they encode what comes
back. Each request's columns are read into arrays, one value per row, before it is queued, so a
request that cannot be read as rows gets its own error and never reaches a model call. Requests
for one version are merged by the adaptive batcher (`merging.py`) and scored together by the one
scoring step (`LoadedModel.score`: one vectorised validation, one model call) under a policy that
predicts only the requests whose rows all pass (`WholeRequests`). A request with a
bad row gets every violation of its own rows and nothing of anyone else's; the other requests in
the batch are served as if it had never arrived. Should a merged call fail in a way nobody
foresaw, each of its requests is tried alone, so only the one at fault gets the error (a 5xx:
the fault is the server's); the batcher answers any request a call leaves unanswered. Copies
for a deployment's shadow arm wait for idle time (`shadows.py`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from shipyard.core.batch import Batch, Predictions
from shipyard.core.refs import ModelRef
from shipyard.errors import (
    NotReadyError,
    PredictionError,
    RequestTooLargeError,
    ShipyardError,
    UnknownModelError,
)
from shipyard.monitoring.live import LiveProfiles
from shipyard.registry.loaded import LoadedModel, warm_up
from shipyard.registry.records import ModelVersion
from shipyard.security.guard import Guard
from shipyard.serving.merging import WholeRequests, as_batch, merge, one_value_per_row, violation
from shipyard.serving.metrics import Metrics
from shipyard.serving.served import Answer, Columns, Limits, Pending, ServedModel
from shipyard.serving.shadows import ShadowCopies

if TYPE_CHECKING:  # imported where used: a bundle's server may lack pyarrow, and skips SQLAlchemy
    from shipyard.explanations.records import ExplanationLog
    from shipyard.monitoring.events import EventLog
    from shipyard.monitoring.feedback import FeedbackStore
    from shipyard.rollout.deployments import Deployment

__all__ = ["ModelService", "logged_error"]

log = logging.getLogger("shipyard.serve")

_Call = tuple[Batch, Predictions]  # one model call: its rows and its outputs


@dataclass(frozen=True, slots=True)
class _Served:
    """One request answered: rows [start, stop) of a model call, and their outputs."""

    job: Pending
    call: _Call
    start: int
    stop: int
    predictions: Predictions


class ModelService:
    """The served models of one worker and the one predict path they share.

    Args:
        limits: request limits and batching settings.
        metrics: where figures are counted.
        events: the prediction log, or None to log nothing.
        live: live profiles of the traffic for drift, or None to keep none.
        feedback: where labels posted to `/v1/feedback` go, or None to refuse them.
        guard: who may call (off by default: every request is anonymous with every role).
        explanations: where served explanations are kept by request id, or None to keep none.
    """

    def __init__(
        self,
        *,
        limits: Limits,
        metrics: Metrics,
        events: EventLog | None = None,
        live: LiveProfiles | None = None,
        feedback: FeedbackStore | None = None,
        guard: Guard | None = None,
        explanations: ExplanationLog | None = None,
    ) -> None:
        self.limits = limits
        self.metrics = metrics
        self.events = events
        self.live = live
        self.feedback = feedback
        self.guard = guard or Guard(required=False)
        self.explanations = explanations
        self.models: dict[str, ServedModel] = {}
        self.draining = False
        self._ids = itertools.count(1)
        self.shadows = ShadowCopies(self.models, metrics=metrics, limit=limits.shadow_queue)
        self._id_prefix = uuid.uuid4().hex[:12]

    # -- models -----------------------------------------------------------------------------------
    def add(self, ref: ModelRef, loaded: LoadedModel, *, load_seconds: float = 0.0) -> ServedModel:
        """Serve `loaded` under its model name; `warm_up` makes it ready."""
        served = self._served(ref, loaded)
        self.models[ref.name] = served
        self.metrics.track(served, loaded.version)
        if self.live is not None:
            self.live.track(ref.name, loaded.version.version, loaded.version.profile)
        self.metrics.set(
            "shipyard_model_load_seconds", (*served.series, str(loaded.version.version)), load_seconds
        )
        return served

    def add_deployment(
        self, deployment: Deployment, loaded: Mapping[int, LoadedModel], *, load_seconds: float = 0.0
    ) -> ServedModel:
        """Serve `deployment` under its name; `loaded` holds every arm's version."""
        stable = loaded[deployment.stable.version]
        ref = ModelRef(deployment.model, version=stable.version.version)
        served = self._served(ref, stable, name=deployment.name)
        self.models[deployment.name] = served
        served.deploy(deployment, loaded)
        if self.live is not None:
            self.live.track(deployment.name, stable.version.version, stable.version.profile)
        for version in loaded:
            self.metrics.set("shipyard_model_load_seconds", (*served.series, str(version)), load_seconds)
        self.show(served)
        return served

    def _served(self, ref: ModelRef, loaded: LoadedModel, *, name: str | None = None) -> ServedModel:
        return ServedModel(
            ref,
            loaded,
            run=self.run_batch,
            limits=self.limits,
            metrics=self.metrics,
            live=self.live,
            name=name,
        )

    def model_of(self, name: str | None) -> str | None:
        """The registered model a route's name stands for, to authorize: a deployment's name
        stands for the model its arms serve; any other name for itself."""
        served = self.models.get(name) if name is not None else None
        return served.ref.name if served is not None else name

    def show(self, served: ServedModel) -> None:
        """Set the gauges that describe a deployment's routing (generation and arm weights)."""
        deployment = served.deployment
        if deployment is None:
            return
        series = served.series
        self.metrics.set("shipyard_deployment_generation", series, float(deployment.generation))
        gauges = self.metrics.gauges.get("shipyard_arm_weight", {})
        for labels in [k for k in gauges if k[:2] == series]:
            del gauges[labels]
        for arm in deployment.arms:  # a percent in the deployment, a ratio in Prometheus
            self.metrics.set("shipyard_arm_weight", (*series, str(arm.version), arm.role), arm.weight / 100)

    @property
    def ready(self) -> bool:
        """True when every served model has answered its warm-up prediction and no stop was asked."""
        return not self.draining and bool(self.models) and all(m.ready for m in self.models.values())

    def warm_up(self) -> None:
        """Predict one synthetic valid row per model, so the first caller pays no first-call costs.

        Raises:
            PredictionError: a model cannot predict even a row its own contract accepts.
        """
        for served in self.models.values():
            for version, lane in served.lanes.items():
                warm_up(lane.loaded)
                self.metrics.set("shipyard_model_ready", (*served.series, str(version)), 1.0)
            served.ready = True

    def find(self, name: str, version: str | None = None) -> ServedModel:
        """The served model `name`, ready or not, checked against the version asked for.

        Raises:
            UnknownModelError: no such model, or another version is being served.
        """
        served = self.models.get(name)
        if served is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise UnknownModelError(f"this server does not serve a model named {name!r}; it serves: {known}")
        if version in (None, "") or version in served.versions():
            return served
        if served.deployment is not None:
            arms = ", ".join(f"{a.version} ({a.role})" for a in served.deployment.arms)
            raise UnknownModelError(
                f"version {version!r} of {name!r} is not served here; deployment {name!r} has versions "
                f"{arms}; leave the version out to be routed, or ask for one of them"
            )
        raise UnknownModelError(
            f"version {version!r} of {name!r} is not served here; this server answers with "
            f"version {served.version.version} ({served.ref}); leave the version out or ask for it"
        )

    def route(self, name: str, version: str | None = None) -> ServedModel:
        """The served model `name`, ready to answer.

        Raises:
            UnknownModelError: no such model, or another version is being served.
            NotReadyError: the model has not finished warming up.
        """
        served = self.find(name, version)
        if not served.ready:
            raise NotReadyError(f"{name!r} is still loading or warming up; try again in a moment")
        return served

    def new_request_id(self) -> str:
        """A request id unique across workers and restarts."""
        return f"{self._id_prefix}{next(self._ids):012x}"

    # -- the predict path -------------------------------------------------------------------------
    async def predict(
        self,
        served: ServedModel,
        columns: Columns,
        n_rows: int,
        *,
        protocol: str,
        request_id: str,
        arrived: float,
        key: str | None = None,
        version: str | None = None,
    ) -> Answer:
        """Queue one request's rows for a model call and wait for its own answer.

        Args:
            key: the routing key that keeps a caller on one arm of a deployment (None: random).
            version: the version asked for by name (checked by `route`); a deployment then
                answers with that arm, and no copy goes to its shadow.

        Raises:
            RequestTooLargeError: more rows than `limits.max_rows`.
            InputError: a column does not hold one value per row.
            ContractViolationError: some of this request's rows break the contract.
            PredictionError: the model failed on this request's rows.
            ServingError: the server failed on this request (a fault of the server).
        """
        if n_rows > self.limits.max_rows:
            raise RequestTooLargeError(
                f"the request has {n_rows} rows; this server takes at most {self.limits.max_rows} "
                "per request (--max-rows); split it or use batch prediction"
            )
        sample = self.limits.log_sample
        logged = self.events is not None and (sample >= 1.0 or random.random() < sample)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        lane = served.lane(key, version)
        rows = one_value_per_row(lane.loaded, columns, n_rows)
        lane.batcher.submit(Pending(rows, n_rows, request_id, protocol, arrived, logged, future))
        answer = await future
        router = served.router
        if router is not None and router.shadow is not None and not version:
            shadow = router.copy_to_shadow(key)
            if shadow is not None:
                self.shadows.add(
                    served,
                    served.lanes[shadow.version],
                    columns,
                    n_rows,
                    request_id=request_id,
                    logged=logged,
                )
        return answer

    def run_batch(self, served: ServedModel, loaded: LoadedModel, jobs: Sequence[Pending]) -> None:
        """Validate and predict the requests of one model call, answering each one.

        Raises:
            Exception: an unforeseen failure on a lone request (the batcher answers it with a
                server fault), or in the bookkeeping after every request was answered.
        """
        started = time.perf_counter()
        name = served.name
        metrics = self.metrics
        metrics.observe("shipyard_adaptive_batch_requests", served.series, len(jobs))
        for job in jobs:
            metrics.observe("shipyard_adaptive_batch_queue_seconds", served.series, started - job.queued)
        try:
            called = time.perf_counter()
            answered, failed, calls = self._answer(loaded, jobs)
            metrics.observe(
                "shipyard_model_call_seconds",
                (*served.series, str(loaded.version.version)),
                time.perf_counter() - called,
            )
        except Exception:
            if len(jobs) == 1:
                raise
            log.exception(
                "a model call of %d requests to %s failed; answering each request alone", len(jobs), name
            )
            answered, failed, calls = [], [], []
            for job in jobs:
                try:
                    alone = self._answer(loaded, [job])
                except Exception as exc:
                    log.error("request %s to %s failed", job.request_id, name, exc_info=exc)
                    job.fail(exc)
                    continue
                answered += alone[0]
                failed += alone[1]
                calls += alone[2]
        version = loaded.version
        for s in answered:
            if not s.job.future.done():
                s.job.future.set_result(Answer(s.job.request_id, version, s.predictions))
        for job, error in failed:
            if not job.future.done():
                job.future.set_exception(error)
        rows = sum(s.stop - s.start for s in answered)
        metrics.observe("shipyard_adaptive_batch_rows", served.series, rows)
        metrics.inc("shipyard_predictions", (*served.series, str(version.version)), rows)
        if self.live is not None and calls:
            self.live.append(name, version.version, calls)
        if self.events is not None:
            self._log(served.model, version, answered, failed)

    def _answer(
        self, loaded: LoadedModel, jobs: Sequence[Pending]
    ) -> tuple[list[_Served], list[tuple[Pending, ShipyardError]], list[_Call]]:
        """The answers to `jobs` (served with their rows and outputs, or failed with their error),
        and the model calls made, as (rows, outputs); answers nobody yet."""
        contract = loaded.contract
        names = contract.names
        answered: list[_Served] = []
        failed: list[tuple[Pending, ShipyardError]] = []
        whole = []
        for job in jobs:
            if all(n in job.columns for n in names):
                whole.append(job)
                continue
            # Missing columns: validate alone, so the message names them for this caller only.
            validation = contract.validate(as_batch(job.columns, job.n_rows))
            failed.append((job, violation(validation.message(str(loaded.version.ref)), validation)))
        calls = self._predict_merged(loaded, whole, answered, failed) if whole else []
        return answered, failed, calls

    def _predict_merged(
        self,
        loaded: LoadedModel,
        jobs: Sequence[Pending],
        served: list[_Served],
        failed: list[tuple[Pending, ShipyardError]],
    ) -> list[_Call]:
        """Predict the jobs' rows in one model call; returns the calls made, as (rows, outputs)."""
        policy = WholeRequests(jobs, str(loaded.version.ref))
        try:
            scored = loaded.score(merge(loaded.contract, jobs), accept=policy)
        except PredictionError as exc:
            failed += policy.rejected
            if len(policy.good) == 1:
                failed.append((jobs[policy.good[0]], exc))
                return []
            # One caller's rows broke the model: answer each request alone, so only theirs fails.
            assert policy.validation is not None  # the policy ran before the model call
            calls = []
            for i in policy.good:
                alone = policy.validation.batch.take(np.arange(policy.offsets[i], policy.offsets[i + 1]))
                try:
                    call = (alone, loaded.predict_valid(alone))
                except PredictionError as single:
                    failed.append((jobs[i], single))
                else:
                    calls.append(call)
                    served.append(_Served(jobs[i], call, 0, alone.n_rows, call[1]))
            return calls
        failed += policy.rejected
        predictions = scored.predictions
        if predictions is None:
            return []
        call = (scored.batch, predictions)
        if len(policy.good) == 1:
            served.append(_Served(jobs[policy.good[0]], call, 0, predictions.n_rows, predictions))
            return [call]
        position = 0
        for i in policy.good:
            n = jobs[i].n_rows
            served.append(
                _Served(jobs[i], call, position, position + n, predictions.slice(position, position + n))
            )
            position += n
        return [call]

    def _log(
        self,
        name: str,
        version: ModelVersion,
        served: Sequence[_Served],
        failed: Sequence[tuple[Pending, ShipyardError]],
    ) -> None:
        assert self.events is not None
        logged = [s for s in served if s.job.logged]
        rejected = [f for f in failed if f[0].logged]
        if not logged and not rejected:
            return
        now = time.perf_counter()
        jobs = [s.job for s in logged] + [f[0] for f in rejected]
        features, predictions = _rows_of(logged) if logged else (Batch({}, 0), None)
        from shipyard.monitoring.events import EventBatch  # there is a log: pyarrow is installed

        self.events.append(
            EventBatch(
                time=time.time(),
                model=name,
                version=version.version,
                request_ids=[j.request_id for j in jobs],
                rows=[j.n_rows for j in jobs],
                protocols=[j.protocol for j in jobs],
                latencies_ms=[(now - j.arrived) * 1000.0 for j in jobs],
                statuses=["ok"] * len(logged) + ["rejected"] * len(rejected),
                errors=[None] * len(logged) + [logged_error(f[1], version) for f in rejected],
                features=features,
                predictions=predictions,
                masked=version.contract.pii_masks,
            )
        )
        self.metrics.set_total("shipyard_events_dropped", (), float(self.events.dropped_rows))


def _rows_of(served: Sequence[_Served]) -> tuple[Batch, Predictions]:
    """The rows and outputs of `served`, end to end: one slice per run of neighbouring requests of
    one model call, and a whole call as it is (every request of a call logged: no copy at all)."""
    runs: list[tuple[_Call, int, int]] = []
    for s in served:
        if runs and runs[-1][0] is s.call and runs[-1][2] == s.start:
            runs[-1] = (s.call, runs[-1][1], s.stop)
        else:
            runs.append((s.call, s.start, s.stop))
    features, predictions = [], []
    for (batch, outputs), start, stop in runs:
        whole = start == 0 and stop == batch.n_rows
        features.append(batch if whole else batch.slice(start, stop))
        predictions.append(outputs if whole else outputs.slice(start, stop))
    return Batch.concat(features), Predictions.concat(predictions)


def logged_error(exc: ShipyardError, version: ModelVersion) -> str:
    """A refusal as the prediction log keeps it. A model's own message may quote the inputs it
    failed on, so with pii features in the contract only its kind is kept (the caller got it all)."""
    if isinstance(exc, PredictionError) and version.contract.pii_masks:
        return f"{type(exc).__name__}: the model failed on these rows (its message may hold pii: not logged)"
    return str(exc)
