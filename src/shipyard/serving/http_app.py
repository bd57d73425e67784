"""The REST transport: one ASGI app for our API, MLflow's `/invocations`, the OIP v2 and operations.

The app is plain ASGI on purpose: its routes are one table (`routes.py`) matched by splitting the
path, which costs a few microseconds where a general router costs tens, and on the serving hot
path that is the difference the benchmark measures. The same table authorizes each request and
is the OpenAPI document's list of routes. The app only decodes and encodes; `ModelService` does
the rest. Status codes live in one table (`asgi.status_of`), never on the exceptions.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Mapping
from typing import Any

import orjson

from shipyard.core.echo import echo
from shipyard.errors import (
    AuthenticationError,
    FeedbackError,
    RateLimitedError,
    SecurityError,
    ShipyardError,
    UnknownModelError,
)
from shipyard.security.access import Action, Principal
from shipyard.security.guard import credential
from shipyard.serving import oip, oip_answers
from shipyard.serving.asgi import (
    JSON,
    JSON_TYPES,
    MLFLOW_CODES,
    ClientGoneError,
    Receive,
    Scope,
    Send,
    check_type,
    content_type,
    error_body,
    header,
    lifespan,
    read_body,
    request_id,
    respond,
    respond_json,
    routing_key,
    status_of,
)
from shipyard.serving.auth import admit
from shipyard.serving.explain_routes import ExplainRoutes
from shipyard.serving.openapi import docs_page, openapi_document
from shipyard.serving.operations import Operations
from shipyard.serving.payloads import (
    decode_mlflow,
    decode_mlflow_csv,
    decode_ours,
    encode_mlflow,
    encode_ours,
    parse_json,
)
from shipyard.serving.routes import Outcome, Route, RouteTable
from shipyard.serving.service import ModelService

__all__ = ["HttpApp", "status_of"]

_VERSION = b"x-shipyard-version"  # the version that answered, on every prediction


class HttpApp:
    """The ASGI application of one worker.

    Args:
        service: the data plane.
    """

    def __init__(self, service: ModelService) -> None:
        self.service = service
        self.metrics = service.metrics
        self.ops = Operations(service)
        self.explain = ExplainRoutes(service)
        self.routes = RouteTable(self._routes())

    def _routes(self) -> list[Route]:
        """The one table of routes: dispatch, authorization and the OpenAPI document read it."""
        read, predict = Action.READ, Action.PREDICT
        return [
            Route("POST", "/v1/models/{name}/predict", self._ours, predict, "Predict", "rest"),
            Route(
                "POST",
                "/invocations",
                self._mlflow,
                predict,
                "MLflow scoring protocol (dataframe_split, dataframe_records, instances, inputs, CSV)",
                "mlflow",
                single=True,
            ),
            Route(
                "POST",
                "/v2/models/{name}/infer",
                self._oip_infer,
                predict,
                "OIP v2 inference (JSON or binary tensors)",
                "oip-rest",
            ),
            Route(
                "POST",
                "/v2/models/{name}/versions/{version}/infer",
                self._oip_infer,
                predict,
                "OIP v2 inference with one version (JSON or binary tensors)",
                "oip-rest",
            ),
            Route(
                "POST",
                "/v1/models/{name}/explain",
                self.explain.ours,
                predict,
                "Predict and explain: predict's answer plus attributions per row, feature and output",
                "rest",
            ),
            Route(
                "POST",
                "/v1/models/{name}:explain",
                self.explain.kserve,
                predict,
                "KServe v1 explain: {'instances': [...]} -> {'explanations': [...]}, one per row",
                "kserve",
            ),
            Route(
                "POST",
                "/v2/models/{name}/explain",
                self.explain.oip,
                predict,
                "OIP v2 inference with the explanation as typed tensors (attributions, base_values, ...)",
                "oip-rest",
            ),
            Route(
                "POST",
                "/v2/models/{name}/versions/{version}/explain",
                self.explain.oip,
                predict,
                "OIP v2 inference with the explanation, of one version",
                "oip-rest",
            ),
            Route(
                "GET",
                "/v1/models/{name}/explanations/{request_id}",
                self.explain.record,
                Action.READ_LOGS,
                "An explanation served before, by its request id (the deployer role: it holds "
                "another caller's request values)",
            ),
            Route("POST", "/v1/feedback", self._feedback, Action.FEEDBACK, "Labels that arrive later"),
            Route("GET", "/healthz", self.ops.liveness, None, "alive"),
            Route("GET", "/readyz", self.ops.readiness, None, "ready: models loaded and warmed up"),
            Route("GET", "/ping", self.ops.readiness, None, "ready (SageMaker's probe)"),
            Route("GET", "/health", self.ops.readiness, None, "ready (Vertex AI's probe)"),
            Route("GET", "/version", self.ops.shipyard_version, None, "the Shipyard version serving"),
            Route("GET", "/metrics", self.ops.prometheus, read, "Prometheus metrics of every worker"),
            Route("GET", "/openapi.json", self._openapi, read, "this OpenAPI document"),
            Route("GET", "/docs", self._docs, read, "the served models' contracts and examples"),
            Route("GET", "/v1/models", self.ops.models, read, "the served models"),
            Route("GET", "/v1/models/{name}", self.ops.model, read, "one served model and its contract"),
            Route("GET", "/v1/models/{name}/drift", self.ops.drift, read, "live drift of a served model"),
            Route("GET", "/v2", self.ops.oip_server, read, "OIP server metadata"),
            Route("GET", "/v2/health/live", self.ops.oip_live, None, "OIP liveness"),
            Route("GET", "/v2/health/ready", self.ops.oip_ready, None, "OIP readiness"),
            Route("GET", "/v2/models/{name}", self.ops.oip_model, read, "OIP model metadata"),
            Route(
                "GET",
                "/v2/models/{name}/versions/{version}",
                self.ops.oip_model,
                read,
                "OIP model metadata of one version",
            ),
            Route("GET", "/v2/models/{name}/ready", self.ops.oip_model_ready, read, "OIP model readiness"),
            Route(
                "GET",
                "/v2/models/{name}/versions/{version}/ready",
                self.ops.oip_model_ready,
                read,
                "OIP readiness of one version",
            ),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await lifespan(receive, send)
            return
        if kind != "http":
            return
        arrived = time.perf_counter()
        metrics = self.metrics
        protocol, model, version = "http", "", ""  # a request refused before its route is counted so
        running: str | None = None  # the key of the in-flight count of a counted route's model
        status = 500  # what uvicorn answers an exception nobody foresaw with
        try:
            method: str = scope["method"]
            parts = scope["path"].strip("/").split("/")
            found = self.routes.find(method, parts)
            refused = await self._refused(scope, send, method, parts, found)
            if refused is not None:
                status = refused
            elif found is None:
                if method in ("GET", "HEAD"):
                    protocol = "ops"
                status = await self._no_route(send, method, scope["path"], parts)
            else:
                route, params = found
                protocol = route.protocol
                model = params.get("name", "")
                if route.single and len(self.service.models) == 1:
                    model = next(iter(self.service.models))
                if protocol != "ops":
                    running = metrics.begin(model)
                status, named, version = await route.handler(scope, receive, send, params, arrived)
                model = named or model
        except ClientGoneError:
            status = 499
        finally:
            if running is not None:
                metrics.end(running)
            if protocol != "ops":
                metrics.request(model, version, protocol, str(status), time.perf_counter() - arrived)

    async def _refused(
        self,
        scope: Scope,
        send: Send,
        method: str,
        parts: list[str],
        found: tuple[Route, Mapping[str, str]] | None,
    ) -> int | None:
        """Ask the guard about the request: None when it may go on, else the status sent."""
        if not self.service.guard.active:  # no auth, no rate limit: nothing to look at on the hot path
            return None
        models = self.service.models
        single = next(iter(models)) if len(models) == 1 else None
        action, target = self.routes.action(method, parts, found, single)
        if action is None:
            return None
        token = credential(header(scope, b"authorization"), header(scope, b"x-api-key"))
        try:
            client = scope.get("client")
            scope["shipyard.principal"] = await admit(
                self.service, token, action, target, client=client[0] if client else None
            )
        except SecurityError as exc:
            status = status_of(exc)
            extra = []
            if isinstance(exc, AuthenticationError):
                extra.append((b"www-authenticate", b'Bearer realm="shipyard"'))
            if isinstance(exc, RateLimitedError):
                extra.append((b"retry-after", str(max(1, math.ceil(exc.retry_after))).encode()))
            error = {"type": type(exc).type_name(), "message": str(exc)}
            body = {"error": error, "error_code": MLFLOW_CODES[status], "message": str(exc)}
            return await respond(send, status, orjson.dumps(body), JSON, extra=extra)
        return None

    async def _no_route(self, send: Send, method: str, path: str, parts: list[str]) -> int:
        """404 for a path no route has; 405 with `Allow` for a method the path's route does not take."""
        allowed = self.routes.allowed(parts)
        if not allowed:
            message = f"no route {echo(path)}; see /docs for the routes"
            return await respond_json(send, 404, {"error": message})
        listed = ", ".join(allowed)
        message = f"method {echo(method)} is not allowed on {echo(path)}; use {listed} (see /docs)"
        body = orjson.dumps({"error": message})
        return await respond(send, 405, body, JSON, extra=[(b"allow", listed.encode())])

    # -- our API ----------------------------------------------------------------------------------
    async def _ours(
        self, scope: Scope, receive: Receive, send: Send, params: Mapping[str, str], arrived: float
    ) -> Outcome:
        name = params["name"]
        rid = request_id(scope) or self.service.new_request_id()
        version = ""
        try:
            served = self.service.route(name)
            version = str(served.version.version)
            body = await self._json_body(scope, receive, JSON_TYPES)
            columns, n = decode_ours(body, served.loaded.contract)
            answer = await self.service.predict(
                served,
                columns,
                n,
                protocol="rest",
                request_id=rid,
                arrived=arrived,
                key=routing_key(served, scope, columns),
            )
        except ShipyardError as exc:
            status = status_of(exc)
            await respond_json(send, status, error_body(exc, rid), rid)
            return status, name, version
        answered = str(answer.version.version)
        body = orjson.dumps(encode_ours(answer, name))
        await respond(send, 200, body, JSON, request_id=rid, extra=[(_VERSION, answered.encode())])
        return 200, name, answered

    # -- labels that arrive later ------------------------------------------------------------------
    async def _feedback(
        self, scope: Scope, receive: Receive, send: Send, params: Mapping[str, str], arrived: float
    ) -> Outcome:
        store = self.service.feedback
        try:
            if store is None:
                raise FeedbackError("this server takes no feedback (it was started without a metadata store)")
            # Here, not at import: the feedback store's modules import SQLAlchemy and pyarrow, which
            # a server of a baked bundle without a metadata store does without.
            from shipyard.monitoring.feedback import parse_feedback, refusal, server_check

            labels = parse_feedback(await self._json_body(scope, receive, JSON_TYPES))
            loop = asyncio.get_running_loop()
            check = server_check(store.meta, self.service.events)
            good, refused = await loop.run_in_executor(None, check.check, labels)
            if any(r.kind == "unknown_request" for r in refused):
                await asyncio.sleep(check.settle_seconds)  # the other workers' unwritten requests
                good, refused = await loop.run_in_executor(None, check.check, labels)
            if refused:
                raise refusal(refused, total=len(labels), source="the body")
            stored = await loop.run_in_executor(
                None,
                functools.partial(store.add, good, source="api", actor=_actor(scope)),
            )
        except ShipyardError as exc:
            status = status_of(exc)
            error: dict[str, Any] = {"type": type(exc).type_name(), "message": str(exc)}
            if isinstance(exc, FeedbackError) and exc.refused:
                error["refused"] = list(exc.refused)
            return await respond_json(send, status, {"error": error}), "", ""
        return await respond_json(send, 202, {"accepted": stored}), "", ""

    # -- MLflow -----------------------------------------------------------------------------------
    async def _mlflow(
        self, scope: Scope, receive: Receive, send: Send, params: Mapping[str, str], arrived: float
    ) -> Outcome:
        rid = request_id(scope) or self.service.new_request_id()
        name, version = "", ""
        try:
            if len(self.service.models) != 1:
                raise UnknownModelError(
                    "/invocations answers for a single model, and this server serves "
                    f"{len(self.service.models)}"
                )
            served = next(iter(self.service.models.values()))
            name = served.name
            served = self.service.route(name)
            version = str(served.version.version)
            if content_type(scope) == b"text/csv":
                columns, n = decode_mlflow_csv(await self._body(scope, receive))
            else:
                body = await self._json_body(scope, receive, (*JSON_TYPES, b"text/csv"))
                columns, n = decode_mlflow(body, served.loaded.contract)
            answer = await self.service.predict(
                served,
                columns,
                n,
                protocol="mlflow",
                request_id=rid,
                arrived=arrived,
                key=routing_key(served, scope, columns),
            )
        except ShipyardError as exc:
            status = status_of(exc)
            payload = {"error_code": MLFLOW_CODES.get(status, "INTERNAL_ERROR"), "message": str(exc)}
            await respond_json(send, status, payload, rid)
            return status, name, version
        answered = str(answer.version.version)
        body = orjson.dumps(encode_mlflow(answer))
        await respond(send, 200, body, JSON, request_id=rid, extra=[(_VERSION, answered.encode())])
        return 200, name, answered

    # -- OIP v2 -----------------------------------------------------------------------------------
    async def _oip_infer(
        self, scope: Scope, receive: Receive, send: Send, params: Mapping[str, str], arrived: float
    ) -> Outcome:
        name, wanted = params["name"], params.get("version")
        version = ""
        try:
            served = self.service.route(name, wanted)
            version = str(served.version.version)
            limit = self.service.limits.max_body_bytes
            request = await oip.read_rest(scope, receive, served.loaded.contract, max_body_bytes=limit)
            rid = request.id or request_id(scope) or self.service.new_request_id()
            answer = await self.service.predict(
                served,
                request.columns,
                request.n_rows,
                protocol="oip-rest",
                request_id=rid,
                arrived=arrived,
                key=routing_key(served, scope, request.columns),
                version=wanted,
            )
            payload, head = oip_answers.encode_rest(
                answer.predictions,
                model=name,
                version=answer.version.version,
                request_id=rid,
                wanted=request.outputs,
                binary=request.binary_outputs,
            )
        except ShipyardError as exc:
            status = status_of(exc)
            await respond_json(send, status, {"error": str(exc)})
            return status, name, version
        extra = [(_VERSION, str(answer.version.version).encode())]
        if head is not None:
            extra.append((b"inference-header-content-length", str(head).encode()))
        media = JSON if head is None else b"application/octet-stream"
        await respond(send, 200, payload, media, request_id=answer.request_id, extra=extra)
        return 200, name, str(answer.version.version)

    # -- the API's own description -----------------------------------------------------------------
    async def _openapi(self, scope: Scope, receive: Receive, send: Send, *_: Any) -> Outcome:
        document = openapi_document(self.service, self.routes.routes)
        return await respond(send, 200, orjson.dumps(document), JSON), "", ""

    async def _docs(self, scope: Scope, receive: Receive, send: Send, *_: Any) -> Outcome:
        page = docs_page(self.service, self.routes.routes)
        return await respond(send, 200, page.encode(), b"text/html; charset=utf-8"), "", ""

    # -- bodies -----------------------------------------------------------------------------------
    async def _json_body(self, scope: Scope, receive: Receive, accepted: tuple[bytes, ...]) -> Any:
        check_type(scope, accepted)
        return parse_json(await self._body(scope, receive))

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        return await read_body(scope, receive, self.service.limits.max_body_bytes)


def _actor(scope: Scope) -> str:
    """Who sent a request, for the record: its principal's name when authentication is on (a
    header anyone can set is only the fallback of an open server)."""
    who: Principal | None = scope.get("shipyard.principal")
    if who is not None and who.via != "none":
        return who.name
    return header(scope, b"user-agent") or "api"
