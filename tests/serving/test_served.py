"""A served name: its lanes (one per loaded version), the lane each request takes, a new version
swapped in, new arms deployed; and a queued request's answer when the server fails."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from shipyard import Registry
from shipyard.core.refs import ModelRef
from shipyard.errors import InputError, ServingError, UnknownModelError
from shipyard.rollout.deployments import Arm, Deployment, Deployments
from shipyard.serving.metrics import Metrics
from shipyard.serving.served import Limits, Pending
from shipyard.serving.service import ModelService

Serve = Callable[..., ModelService]  # the `serve` fixture: arms (and limits) to a warm service


def test_new_arms_replace_the_router_keeping_loaded_lanes(api_registry: Registry, serve: Serve) -> None:
    served = serve([Arm(1, "stable", 100.0)]).models["api"]
    first_lane = served.lanes[1]
    deployment: Deployment = Deployments(api_registry).set_arms(
        "api", [Arm(1, "stable", 50.0), Arm(2, "canary", 50.0)], reason="test"
    )
    served.deploy(deployment, {1: first_lane.loaded, 2: api_registry.load("credit:2")})
    assert served.lanes[1] is first_lane  # its queue and batch statistics survive
    assert served.router is not None and served.router.canary == Arm(2, "canary", 50.0)
    metrics = served.metrics.gauges["shipyard_model_ready"]
    assert metrics[("credit", "api", "2")] == 1.0


def test_a_new_version_is_swapped_in_and_the_old_one_shown_not_ready(api_registry: Registry) -> None:
    service = ModelService(limits=Limits(), metrics=Metrics())
    served = service.add(ModelRef.parse("credit:1"), api_registry.load("credit:1"))
    assert served.lane(None) is served.primary and served.versions() == ["1"]
    served.swap(api_registry.load("credit:2"), 0.25)
    assert served.version.version == 2 and served.versions() == ["2"]
    ready = service.metrics.gauges["shipyard_model_ready"]
    assert (ready[("credit", "", "1")], ready[("credit", "", "2")]) == (0.0, 1.0)
    assert service.metrics.gauges["shipyard_model_load_seconds"][("credit", "", "2")] == 0.25
    assert set(service.metrics.gauges["shipyard_model_info"]) == {("credit", "", "2", "sklearn")}


def test_a_request_takes_the_version_it_names_and_a_version_gone_is_refused(serve: Serve) -> None:
    served = serve([Arm(1, "stable", 100.0), Arm(2, "canary", 0.0)]).models["api"]
    assert served.lane(None, "2") is served.lanes[2]
    assert served.lane("DE") is served.lanes[1]  # the canary's weight is 0
    for gone in ("3", "latest"):
        with pytest.raises(UnknownModelError, match=f"version {gone} of 'api' stopped being served"):
            served.lane(None, gone)


def test_the_routing_key_is_the_sticky_features_first_value(serve: Serve) -> None:
    served = serve([Arm(1, "stable", 100.0)]).models["api"]
    assert served.routing_key("from-header", {"country": ["DE", "FR"]}) == "DE"
    assert served.routing_key("from-header", {"age": [30]}) is None


def test_a_failure_not_shipyards_own_is_answered_without_its_text_and_only_once() -> None:
    async def run() -> tuple[BaseException | None, BaseException | None]:
        loop = asyncio.get_running_loop()
        crashed = Pending({}, 1, "r1", "rest", time.perf_counter(), True, loop.create_future())
        crashed.fail(KeyError("income=123456"))
        crashed.fail(InputError("too late"))  # answered already: kept as it was
        refused = Pending({}, 1, "r2", "rest", time.perf_counter(), True, loop.create_future())
        refused.fail(InputError("row 0 is not an object"))
        return crashed.future.exception(), refused.future.exception()

    crashed, refused = asyncio.run(run())
    assert isinstance(crashed, ServingError)
    assert "request r1 (KeyError)" in str(crashed) and "123456" not in str(crashed)
    assert isinstance(refused, InputError) and str(refused) == "row 0 is not an object"
