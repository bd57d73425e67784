"""The operations routes of one worker, called in process: probes, the version, the served models
and their OIP metadata, and what a caller may see of them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pandas as pd
import pytest

from shipyard import Registry
from shipyard.core.refs import ModelRef
from shipyard.security.access import Principal, Role
from shipyard.security.guard import Guard
from shipyard.serving.asgi import Message, Scope
from shipyard.serving.metrics import Metrics
from shipyard.serving.operations import Operations
from shipyard.serving.served import Limits
from shipyard.serving.service import ModelService

Handler = Callable[..., Awaitable[Any]]


@pytest.fixture
def service(sqlite_registry: Registry, credit: pd.DataFrame, credit_pipeline: Any) -> ModelService:
    """`credit:1` served, not warmed up yet."""
    sqlite_registry.register(credit_pipeline, name="credit", train_data=credit, target="default")
    service = ModelService(limits=Limits(), metrics=Metrics())
    service.add(ModelRef.parse("credit:1"), sqlite_registry.load("credit:1"))
    return service


def call(handler: Handler, scope: Scope | None = None, **params: str) -> tuple[int, Any]:
    """Call one route's handler; the status and the JSON it answered."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    asyncio.run(handler(scope or {"type": "http", "headers": []}, receive, send, params, 0.0))
    return sent[0]["status"], orjson.loads(sent[1]["body"])


def test_a_worker_is_ready_once_its_models_answered_their_warm_up(service: ModelService) -> None:
    operations = Operations(service)
    assert call(operations.liveness) == (200, {"status": "alive"})
    assert call(operations.readiness) == (503, {"status": "loading", "models": {"credit": 1}})
    assert call(operations.oip_ready) == (503, {"ready": False})
    assert call(operations.oip_model_ready, name="credit") == (503, {"name": "credit", "ready": False})
    service.warm_up()
    assert call(operations.readiness) == (200, {"status": "ready", "models": {"credit": 1}})
    assert call(operations.oip_ready) == (200, {"ready": True})
    assert call(operations.oip_live) == (200, {"live": True})
    assert call(operations.shipyard_version)[1] == {"shipyard": operations.version}


def test_with_authentication_on_a_probe_without_a_credential_sees_no_model_names(
    service: ModelService,
) -> None:
    service.guard = Guard(required=True)
    service.warm_up()
    assert call(Operations(service).readiness) == (200, {"status": "ready"})
    headers = [(b"x-api-key", b"sy_unknown")]
    assert call(Operations(service).readiness, {"type": "http", "headers": headers}) == (
        200,
        {"status": "ready"},
    )


def test_the_served_models_are_shown_with_their_contract_to_whoever_sees_them(service: ModelService) -> None:
    operations = Operations(service)
    status, body = call(operations.models)
    [credit] = body["models"]
    assert status == 200 and (credit["name"], credit["serving"], credit["version"]) == (
        "credit",
        "credit:1",
        1,
    )
    assert [f["name"] for f in credit["contract"]["features"]][:2] == ["age", "income"]
    scoped = {"type": "http", "headers": [], "shipyard.principal": Principal("bot", Role.READER, ("fraud*",))}
    assert call(operations.models, scoped) == (200, {"models": []})
    assert call(operations.model, name="credit")[1] == credit
    status, body = call(operations.model, name="fraud")
    assert status == 404 and body["error"]["type"] == "unknown_model"


def test_oip_metadata_names_the_served_version_and_a_live_drift_needs_live_profiles(
    service: ModelService,
) -> None:
    service.warm_up()
    operations = Operations(service)
    status, meta = call(operations.oip_model, name="credit")
    assert status == 200 and (meta["name"], meta["versions"]) == ("credit", ["1"])
    assert call(operations.oip_model, name="credit", version="7")[0] == 404
    assert call(operations.oip_server)[1]["extensions"] == ["binary_tensor_data"]
    status, body = call(operations.drift, name="credit")
    assert status == 404 and "live profiles are off" in body["error"]["message"]
