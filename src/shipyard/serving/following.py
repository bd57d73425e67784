"""What a worker follows while it serves: the versions its aliases point to, a deployment's arms,
and (on worker 0 of a deployment) the rollout controller that moves them."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time

from shipyard.config import Settings
from shipyard.core.refs import ModelRef
from shipyard.errors import ShipyardError
from shipyard.registry.loaded import LoadedModel, warm_up
from shipyard.registry.registry import Registry
from shipyard.rollout.deployments import Deployments
from shipyard.serving.served import ServedModel
from shipyard.serving.service import ModelService

__all__ = ["follow_aliases", "follow_deployment", "start_controller"]

log = logging.getLogger("shipyard.serve")


async def follow_aliases(
    settings: Settings, service: ModelService, *, interval: float, trust_pickle: bool
) -> None:
    """Every `interval` seconds, load the version an alias now points to and swap it in.

    Args:
        settings: where the registry is.
        service: the worker's data plane; its models served by an alias are followed.
        interval: seconds between two reads of the aliases.
        trust_pickle: load pickled models (as the server was started).
    """
    followed = [m for m in service.models.values() if m.ref.version is None]
    if not followed:
        return
    loop = asyncio.get_running_loop()
    registry: Registry | None = None
    try:
        while True:
            await asyncio.sleep(interval)
            if registry is None:
                registry = await loop.run_in_executor(None, Registry, settings)
            for served in followed:
                try:
                    current = await loop.run_in_executor(None, registry.get, served.ref)
                    if current.version == served.version.version:
                        continue
                    started = time.perf_counter()
                    pinned = ModelRef.parse(f"{served.name}:{current.version}")
                    load = functools.partial(registry.load, pinned, trust_pickle=trust_pickle)
                    model = await loop.run_in_executor(None, load)
                    warm_up(model)
                    served.swap(model, time.perf_counter() - started)
                    log.warning("%s now answers with version %d", served.ref, current.version)
                except ShipyardError as exc:
                    log.warning(
                        "could not follow %s: %s; still serving version %d",
                        served.ref,
                        exc,
                        served.version.version,
                    )
    finally:
        if registry is not None:
            registry.close()


async def follow_deployment(
    settings: Settings, service: ModelService, served: ServedModel, *, interval: float, trust_pickle: bool
) -> None:
    """Every `interval` seconds, read the deployment's generation; on a change, load and warm the
    versions of its new arms, then route by them (a version is never routed to before it has
    answered its warm-up).

    Args:
        settings: where the registry is.
        service: the worker's data plane.
        served: the deployment as the worker serves it.
        interval: seconds between two reads of the generation.
        trust_pickle: load pickled models (as the server was started).
    """
    assert served.deployment is not None
    name, generation = served.name, served.deployment.generation
    loop = asyncio.get_running_loop()
    registry: Registry | None = None
    try:
        while True:
            await asyncio.sleep(interval)
            try:
                if registry is None:
                    registry = await loop.run_in_executor(None, Registry, settings)
                deployments = Deployments(registry)
                if await loop.run_in_executor(None, deployments.generation, name) == generation:
                    continue
                deployment = await loop.run_in_executor(None, deployments.get, name)
                models = {v: lane.loaded for v, lane in served.lanes.items()}
                for arm in deployment.arms:
                    if arm.version not in models:
                        started = time.perf_counter()
                        load = functools.partial(
                            _load_warm, registry, deployment.ref(arm), trust_pickle=trust_pickle
                        )
                        models[arm.version] = await loop.run_in_executor(None, load)
                        service.metrics.set(
                            "shipyard_model_load_seconds",
                            (*served.series, str(arm.version)),
                            time.perf_counter() - started,
                        )
                served.deploy(deployment, {a.version: models[a.version] for a in deployment.arms})
                service.show(served)
                generation = deployment.generation
                arms = ", ".join(map(str, deployment.arms))
                log.warning("deployment %s generation %d: %s", name, generation, arms)
            except Exception as exc:  # a replica that stops following would miss a rollback
                log.warning("could not follow deployment %s: %s; routing as before", name, exc)
    finally:
        if registry is not None:
            registry.close()


def _load_warm(registry: Registry, ref: ModelRef, *, trust_pickle: bool) -> LoadedModel:
    model = registry.load(ref, trust_pickle=trust_pickle)
    warm_up(model)
    return model


class _ControllerThread:
    """The rollout controller on a thread of worker 0; the lease keeps it one across replicas."""

    def __init__(self, settings: Settings, *, trust_pickle: bool) -> None:
        from shipyard.rollout.controller import Controller

        self.registry = Registry(settings, actor="rollout-controller")
        self.controller = Controller(self.registry, trust_pickle=trust_pickle)
        self.stopping = threading.Event()
        self.thread = threading.Thread(
            target=self.controller.run, args=(self.stopping,), name="shipyard-rollouts", daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        """Stop after the current pass (which gives the lease up); blocks, so call it off the loop."""
        self.stopping.set()
        self.thread.join(timeout=30)
        if not self.thread.is_alive():
            self.registry.close()  # else the daemon thread still uses it; the process exit ends both


def start_controller(settings: Settings, *, trust_pickle: bool) -> _ControllerThread | None:
    """The rollout controller, started on a thread; None (and a warning) when it cannot start."""
    try:
        return _ControllerThread(settings, trust_pickle=trust_pickle)
    except ShipyardError as exc:
        log.warning("the rollout controller could not start: %s; rollouts will not move from here", exc)
        return None
