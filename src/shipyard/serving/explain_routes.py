"""The explain routes of the REST transport: ours, KServe v1's, the OIP's, and reading one back;
`HttpApp`'s route table names them (explaining is the `predict` action, as predicting is)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import orjson

from shipyard.errors import NotFoundError, RefError, ShipyardError
from shipyard.serving import oip, oip_answers
from shipyard.serving.asgi import (
    JSON,
    JSON_TYPES,
    Receive,
    Scope,
    Send,
    check_type,
    error_body,
    read_body,
    request_id,
    respond,
    respond_json,
    routing_key,
    status_of,
)
from shipyard.serving.explain_payloads import (
    decode_explain,
    decode_kserve,
    encode_explained,
    encode_kserve,
    explanation_parameters,
    explanation_tensors,
)
from shipyard.serving.explaining import explain_request, read_ask
from shipyard.serving.payloads import parse_json
from shipyard.serving.routes import Outcome
from shipyard.serving.service import ModelService

__all__ = ["ExplainRoutes"]

_VERSION = b"x-shipyard-version"  # the version that answered, as on every prediction


class ExplainRoutes:
    """The handlers of the explain routes of one worker.

    Args:
        service: the data plane.
    """

    def __init__(self, service: ModelService) -> None:
        self.service = service

    async def ours(
        self, scope: Scope, receive: Receive, send: Send, params: Mapping[str, str], arrived: float
    ) -> Outcome:
        """`POST /v1/models/{name}/explain`: predict's answer plus `explanation`."""
        return await self._json(scope, receive, send, params, arrived, kserve=False)

    async def kserve(
        self, scope: Scope, receive: Receive, send: Send, params: Mapping[str, str], arrived: float
    ) -> Outcome:
        """`POST /v1/models/{name}:explain`: KServe v1's `explanations`, one per row."""
        return await self._json(scope, receive, send, params, arrived, kserve=True)

    async def _json(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        params: Mapping[str, str],
        arrived: float,
        *,
        kserve: bool,
    ) -> Outcome:
        name = params["name"]
        rid = request_id(scope) or self.service.new_request_id()
        version = ""
        try:
            served = self.service.route(name)
            version = str(served.version.version)
            check_type(scope, JSON_TYPES)
            body = parse_json(await self._body(scope, receive))
            decode = decode_kserve if kserve else decode_explain
            columns, n, ask = decode(body, served.loaded.contract)
            explained = await explain_request(
                self.service,
                served,
                columns,
                n,
                ask=ask,
                protocol="kserve" if kserve else "rest",
                request_id=rid,
                arrived=arrived,
                key=routing_key(served, scope, columns),
            )
        except ShipyardError as exc:
            status = status_of(exc)
            await respond_json(send, status, error_body(exc, rid), rid)
            return status, name, version
        answered = str(explained.answer.version.version)
        encoded = encode_kserve(explained, name) if kserve else encode_explained(explained, name)
        await respond(
            send, 200, orjson.dumps(encoded), JSON, request_id=rid, extra=[(_VERSION, answered.encode())]
        )
        return 200, name, answered

    async def oip(
        self, scope: Scope, receive: Receive, send: Send, params: Mapping[str, str], arrived: float
    ) -> Outcome:
        """`POST /v2/models/{name}[/versions/{version}]/explain`: infer's tensors plus the
        explanation's (`explain_payloads`)."""
        name, wanted = params["name"], params.get("version")
        version = ""
        try:
            served = self.service.route(name, wanted)
            version = str(served.version.version)
            limit = self.service.limits.max_body_bytes
            request = await oip.read_rest(scope, receive, served.loaded.contract, max_body_bytes=limit)
            ask = read_ask(request.parameters, where="the request's parameters")
            rid = request.id or request_id(scope) or self.service.new_request_id()
            explained = await explain_request(
                self.service,
                served,
                request.columns,
                request.n_rows,
                ask=ask,
                protocol="oip-rest",
                request_id=rid,
                arrived=arrived,
                key=routing_key(served, scope, request.columns),
                version=wanted,
            )
            payload, head = oip_answers.encode_rest(
                explained.answer.predictions,
                model=name,
                version=explained.answer.version.version,
                request_id=rid,
                wanted=request.outputs,
                binary=request.binary_outputs,
                extra=explanation_tensors(explained),
                parameters=explanation_parameters(explained),
            )
        except ShipyardError as exc:
            status = status_of(exc)
            await respond_json(send, status, {"error": str(exc)})
            return status, name, version
        answered = str(explained.answer.version.version)
        extra = [(_VERSION, answered.encode())]
        if head is not None:
            extra.append((b"inference-header-content-length", str(head).encode()))
        media = JSON if head is None else b"application/octet-stream"
        await respond(send, 200, payload, media, request_id=rid, extra=extra)
        return 200, name, answered

    async def record(
        self, scope: Scope, receive: Receive, send: Send, params: Mapping[str, str], arrived: float
    ) -> Outcome:
        """`GET /v1/models/{name}/explanations/{request_id}`: an explanation served before, as the
        explanation log keeps it (from whichever worker answered it)."""
        name, rid = params["name"], params["request_id"]
        try:
            store = self.service.explanations
            if store is None:
                raise NotFoundError(
                    "this server keeps no explanations (it writes no prediction log); "
                    "start it without --no-log to keep them"
                )
            model = self.service.model_of(name) or name
            loop = asyncio.get_running_loop()
            try:
                found = await loop.run_in_executor(None, lambda: store.read(rid, model=model))
            except RefError:
                raise NotFoundError(f"no model is named {name!r}, so no explanation is kept for it") from None
        except ShipyardError as exc:
            error = {"type": type(exc).type_name(), "message": str(exc), "request_id": rid}
            return await respond_json(send, status_of(exc), {"error": error}), name, ""
        return await respond_json(send, 200, found.to_dict()), name, str(found.version)

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        return await read_body(scope, receive, self.service.limits.max_body_bytes)
