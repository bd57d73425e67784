"""The operations routes of the REST transport: health and readiness probes, the version, metrics,
the served models, live drift and the OIP's metadata; `HttpApp`'s route table names them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from importlib.metadata import version as package_version
from typing import Any

from shipyard.errors import SecurityError, ShipyardError
from shipyard.security.access import Action, Principal
from shipyard.security.guard import ANONYMOUS, credential
from shipyard.serving import oip_answers
from shipyard.serving.asgi import (
    Receive,
    Scope,
    Send,
    header,
    respond,
    respond_json,
    status_of,
)
from shipyard.serving.auth import admit
from shipyard.serving.exposition import render
from shipyard.serving.routes import Outcome
from shipyard.serving.served import ServedModel
from shipyard.serving.service import ModelService

__all__ = ["Operations"]


class Operations:
    """The handlers of the operations routes of one worker.

    Args:
        service: the data plane.
    """

    def __init__(self, service: ModelService) -> None:
        self.service = service
        self.metrics = service.metrics
        self.alive = True
        self.version = package_version("shipyard")

    async def liveness(self, scope: Scope, receive: Receive, send: Send, *_: Any) -> Outcome:
        """`/healthz`: the worker is alive."""
        return await respond_json(send, 200, {"status": "alive"}), "", ""

    async def readiness(self, scope: Scope, receive: Receive, send: Send, *_: Any) -> Outcome:
        """`/readyz`, `/ping`, `/health`: ready to answer; the models served, for a caller who may read."""
        ready = self.service.ready
        status: dict[str, Any] = {"status": "ready" if ready else "loading"}
        reader = await self._reader(scope)
        if reader is not None:  # what is served is for callers who may read it
            status["models"] = {
                m.name: m.version.version for m in self.service.models.values() if reader.sees(m.ref.name)
            }
        return await respond_json(send, 200 if ready else 503, status), "", ""

    async def shipyard_version(self, scope: Scope, receive: Receive, send: Send, *_: Any) -> Outcome:
        """`/version`: the Shipyard version serving."""
        return await respond_json(send, 200, {"shipyard": self.version}), "", ""

    async def prometheus(self, scope: Scope, receive: Receive, send: Send, *_: Any) -> Outcome:
        """`/metrics`: the Prometheus metrics of every worker."""
        body = render(self.metrics)
        return await respond(send, 200, body, b"text/plain; version=0.0.4; charset=utf-8"), "", ""

    async def models(self, scope: Scope, receive: Receive, send: Send, *_: Any) -> Outcome:
        """`/v1/models`: the served models (a principal scoped to some models is shown only those)."""
        who: Principal | None = scope.get("shipyard.principal")
        shown = [m for m in self.service.models.values() if who is None or who.sees(m.ref.name)]
        return await respond_json(send, 200, {"models": [_describe(m) for m in shown]}), "", ""

    async def model(
        self, scope: Scope, receive: Receive, send: Send, params: Mapping[str, str], arrived: float
    ) -> Outcome:
        """`/v1/models/{name}`: one served model and its contract."""
        try:
            served = self.service.find(params["name"])
        except ShipyardError as exc:
            error = {"error": {"type": type(exc).type_name(), "message": str(exc)}}
            return await respond_json(send, status_of(exc), error), "", ""
        return await respond_json(send, 200, _describe(served)), "", ""

    async def _reader(self, scope: Scope) -> Principal | None:
        """Who may see what is served, on an open route: anyone when authentication is off, else
        the caller's principal if its credential verifies (None: show only the status)."""
        guard = self.service.guard
        if not guard.required:
            return ANONYMOUS
        token = credential(header(scope, b"authorization"), header(scope, b"x-api-key"))
        if token is None:  # a probe without credentials: no lookup, no audit record
            return None
        client = scope.get("client")
        try:
            return await admit(self.service, token, Action.READ, None, client=client[0] if client else None)
        except SecurityError:
            return None

    async def drift(
        self, scope: Scope, receive: Receive, send: Send, params: Mapping[str, str], arrived: float
    ) -> Outcome:
        """`/v1/models/{name}/drift`: live drift of a served model over the drift window."""
        service, name = self.service, params["name"]
        try:
            served = service.find(name)
        except ShipyardError as exc:
            error = {"error": {"type": type(exc).type_name(), "message": str(exc)}}
            return await respond_json(send, status_of(exc), error), "", ""
        live = service.live
        version = served.version
        if live is None or version.profile is None:
            why = (
                "live profiles are off (--no-profile)"
                if live is None
                else f"{version.ref} has no reference profile"
            )
            return await respond_json(send, 404, {"error": {"type": "NOT_FOUND", "message": why}}), "", ""
        minutes = service.limits.drift_minutes
        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(None, live.drift, name, version.version, minutes)
        body = {
            "model": name,
            "version": version.version,
            "window_minutes": minutes,
            "drift": report.to_dict() if report is not None else None,
        }
        return await respond_json(send, 200, body), "", ""

    async def oip_server(self, scope: Scope, receive: Receive, send: Send, *_: Any) -> Outcome:
        """`/v2`: the OIP server metadata."""
        body = {"name": "shipyard", "version": self.version, "extensions": ["binary_tensor_data"]}
        return await respond_json(send, 200, body), "", ""

    async def oip_live(self, scope: Scope, receive: Receive, send: Send, *_: Any) -> Outcome:
        """`/v2/health/live`: the OIP liveness."""
        return await respond_json(send, 200 if self.alive else 503, {"live": self.alive}), "", ""

    async def oip_ready(self, scope: Scope, receive: Receive, send: Send, *_: Any) -> Outcome:
        """`/v2/health/ready`: the OIP readiness."""
        ready = self.service.ready
        return await respond_json(send, 200 if ready else 503, {"ready": ready}), "", ""

    async def oip_model(
        self, scope: Scope, receive: Receive, send: Send, params: Mapping[str, str], arrived: float
    ) -> Outcome:
        """`/v2/models/{name}[/versions/{version}]`: the OIP model metadata."""
        name = params["name"]
        try:
            served = self.service.route(name, params.get("version"))
        except ShipyardError as exc:
            return await respond_json(send, status_of(exc), {"error": str(exc)}), "", ""
        version = served.version
        metadata = oip_answers.model_metadata(version.contract, name, version.version, version.flavor)
        return await respond_json(send, 200, metadata), "", ""

    async def oip_model_ready(
        self, scope: Scope, receive: Receive, send: Send, params: Mapping[str, str], arrived: float
    ) -> Outcome:
        """`/v2/models/{name}[/versions/{version}]/ready`: the OIP model readiness."""
        name = params["name"]
        try:
            served = self.service.find(name, params.get("version"))
        except ShipyardError as exc:
            return await respond_json(send, status_of(exc), {"error": str(exc)}), "", ""
        body = {"name": name, "ready": served.ready}
        return await respond_json(send, 200 if served.ready else 503, body), "", ""


def _describe(served: ServedModel) -> dict[str, Any]:
    version = served.version
    return {
        "name": served.name,
        "serving": str(served.ref),
        "version": version.version,
        "flavor": version.flavor,
        "ready": served.ready,
        "contract": version.contract.to_dict(),
    }
