"""AWS Lambda: the REST server's app answering API Gateway and function URL events in process.

A container-image Lambda calls `handler(event, context)` once per HTTP request. Each event is
turned into one ASGI request to the very `HttpApp` that `shipyard serve` runs, so routing (404,
405), decoding, contract validation, the error table (`wire.HTTP_STATUSES`) and every payload are
the REST server's, byte for byte; only the envelope differs: API Gateway REST APIs send payload
format 1.0 (`httpMethod`, `multiValueHeaders`) and take repeated headers back in
`multiValueHeaders`; HTTP APIs and function URLs send format 2.0 (`rawPath`, comma-joined
`headers`, `cookies`) and take `headers` and `cookies` back. Bodies that are not text travel
base64-encoded both ways.

The version is loaded once per container, on the first event, and kept in a module-level cache
(Lambda reuses a container for many events; loading per event would pay the model's load on every
request): the baked bundle at `SHIPYARD_BUNDLE` (default `/var/task/bundle`), or, when no bundle is
named and `SHIPYARD_SERVE_REF` is, that reference from the registry of `SHIPYARD_HOME` /
`SHIPYARD_DB_URL` (a Lambda that serves what an alias points at when its container starts).

One event loop is kept across invocations. A container answers one event at a time, so the data
plane runs as it does under uvicorn with one caller: the adaptive batcher schedules its model
call on the loop's next turn (it starts no task of its own), with `max_wait_ms=0` since no other
request can join. Lambda freezes the process between events, so nothing may be left to a
background thread: the prediction log is off unless `SHIPYARD_STORE_URL` names a store (the image's
file system is read-only but for /tmp), and when it is on, each event's log is written before the
event is answered.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode

from shipyard.config import Settings
from shipyard.core.echo import echo
from shipyard.core.refs import ModelRef
from shipyard.errors import InputError
from shipyard.serving.asgi import Message
from shipyard.serving.http_app import HttpApp
from shipyard.serving.metrics import Metrics
from shipyard.serving.served import Limits
from shipyard.serving.service import ModelService

if TYPE_CHECKING:
    from shipyard.explanations.records import ExplanationLog
    from shipyard.monitoring.events import EventLog
    from shipyard.registry.loaded import LoadedModel

__all__ = ["DEFAULT_BUNDLE", "LambdaSettings", "handler"]

log = logging.getLogger("shipyard.serverless")

DEFAULT_BUNDLE = "/var/task/bundle"
"""Where the Lambda image holds the baked bundle unless `SHIPYARD_BUNDLE` says otherwise."""

_TEXT_TYPES = ("text/", "application/json")
"""Media types answered as text; any other body is sent base64-encoded (OIP binary tensors)."""

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, kw_only=True)
class LambdaSettings:
    """What the handler serves, read from the function's environment.

    Args:
        bundle: the baked bundle's folder, or None to serve `ref` from the registry.
        ref: the version to load from the registry (`credit@production`), when no bundle is named.
        log_events: write the prediction log and the explanation log to `settings.store_url`.
        settings: the registry, store and keys (`Settings.from_env`).
    """

    bundle: Path | None
    ref: str | None
    log_events: bool
    settings: Settings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LambdaSettings:
        """Read `SHIPYARD_BUNDLE`, `SHIPYARD_SERVE_REF` and `SHIPYARD_STORE_URL` (and the rest of
        `Settings.from_env`) from the environment, or the mapping given.

        Raises:
            ConfigError: a setting is malformed.
        """
        env = os.environ if environ is None else environ
        bundle, ref = env.get("SHIPYARD_BUNDLE"), env.get("SHIPYARD_SERVE_REF")
        return cls(
            bundle=Path(bundle or DEFAULT_BUNDLE) if bundle or not ref else None,
            ref=None if bundle else ref,
            log_events=bool(env.get("SHIPYARD_STORE_URL")),
            settings=Settings.from_env(env),
        )


@dataclass(frozen=True)
class _Runtime:
    """What one container keeps between events: the app, its event loop and its logs."""

    app: HttpApp
    loop: asyncio.AbstractEventLoop
    events: EventLog | None


_runtimes: dict[LambdaSettings, _Runtime] = {}
"""The loaded app per configuration: one in a Lambda container (its environment never changes)."""


@dataclass(frozen=True, kw_only=True)
class _Request:
    """One HTTP request read from an event, and the payload format its answer must take."""

    v2: bool
    method: str
    path: str
    raw_path: bytes
    query: bytes
    headers: Headers
    body: bytes
    client: tuple[str, int] | None


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Answer an API Gateway REST (payload 1.0), HTTP API (2.0) or function URL event.

    The first event of a container loads the version (`LambdaSettings.from_env`); every event is
    answered by the REST server's app, with its statuses and bodies.

    Raises:
        InputError: the event is not an HTTP event of API Gateway or a function URL.
        ShipyardError: the version cannot be loaded (the event is then answered by Lambda's error).
    """
    request = _read_event(event)
    runtime = _runtime(LambdaSettings.from_env())
    status, headers, body = runtime.loop.run_until_complete(_call(runtime.app, request))
    if runtime.events is not None:
        runtime.events.flush()  # a frozen container runs no writer thread: log before answering
    return _answer(request.v2, status, headers, body)


def _read_event(event: Mapping[str, Any]) -> _Request:
    """The HTTP request an API Gateway or function URL event carries; API Gateway's request id
    is its `X-Request-Id` unless the caller sent one (the REST server keeps the caller's too).

    Raises:
        InputError: the event has neither format's keys, or a body marked base64 that is not.
    """
    if not isinstance(event, Mapping):
        raise InputError(
            f"the Lambda event is a {type(event).__name__}; expected an API Gateway or function URL "
            "event (an object)"
        )
    if event.get("version") == "2.0" and "rawPath" in event:
        request = _read_v2(event)
    elif "httpMethod" in event and "path" in event:
        request = _read_v1(event)
    else:
        raise InputError(
            f"the Lambda event has keys {echo(sorted(map(str, event)))}; expected an API Gateway REST "
            "event (payload 1.0: 'httpMethod', 'path'), or an HTTP API or function URL event "
            "(payload 2.0: 'version': '2.0', 'rawPath')"
        )
    request_id = (event.get("requestContext") or {}).get("requestId")
    if request_id and not any(k == b"x-request-id" for k, _ in request.headers):
        request.headers.append((b"x-request-id", str(request_id).encode()))
    return request


def _read_v2(event: Mapping[str, Any]) -> _Request:
    """An HTTP API or function URL event (payload 2.0): repeated headers arrive comma-joined,
    cookies apart."""
    context = event.get("requestContext") or {}
    http = context.get("http") or {}
    raw_path: str = event["rawPath"]
    headers = [(k.lower().encode(), str(v).encode()) for k, v in (event.get("headers") or {}).items()]
    if event.get("cookies"):
        headers.append((b"cookie", "; ".join(event["cookies"]).encode()))
    source = http.get("sourceIp")
    return _Request(
        v2=True,
        method=str(http.get("method", "")).upper(),
        path=_without_stage(unquote(raw_path), context.get("stage")),
        raw_path=raw_path.encode(),
        query=str(event.get("rawQueryString") or "").encode(),
        headers=headers,
        body=_body(event),
        client=(str(source), 0) if source else None,
    )


def _read_v1(event: Mapping[str, Any]) -> _Request:
    """An API Gateway REST event (payload 1.0): `multiValueHeaders` holds every value of a
    repeated header, `headers` only the last."""
    multi = event.get("multiValueHeaders")
    if multi:
        headers = [(k.lower().encode(), str(v).encode()) for k, vs in multi.items() for v in vs or ()]
    else:
        headers = [(k.lower().encode(), str(v).encode()) for k, v in (event.get("headers") or {}).items()]
    params = event.get("multiValueQueryStringParameters") or event.get("queryStringParameters") or {}
    source = ((event.get("requestContext") or {}).get("identity") or {}).get("sourceIp")
    path = str(event["path"])
    return _Request(
        v2=False,
        method=str(event["httpMethod"]).upper(),
        path=path,
        raw_path=path.encode(),
        query=urlencode(params, doseq=True).encode(),
        headers=headers,
        body=_body(event),
        client=(str(source), 0) if source else None,
    )


def _without_stage(path: str, stage: str | None) -> str:
    """The path below an HTTP API's named stage: its `rawPath` starts with `/{stage}` unless the
    stage is `$default` (function URLs have no stage)."""
    if not stage or stage == "$default":
        return path
    prefix = f"/{stage}"
    if path == prefix or path.startswith(prefix + "/"):
        return path[len(prefix) :] or "/"
    return path


def _body(event: Mapping[str, Any]) -> bytes:
    """The request body, base64-decoded when the event says it is encoded.

    Raises:
        InputError: `isBase64Encoded` is true and the body is not base64.
    """
    body = event.get("body")
    if body is None:
        return b""
    if not event.get("isBase64Encoded"):
        return str(body).encode()
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(
            f"the event's body is marked base64 (isBase64Encoded) but is not base64: it starts "
            f"{echo(str(body)[:40])}"
        ) from None


def _runtime(config: LambdaSettings) -> _Runtime:
    """The app of `config`, loaded on first use and kept for the container's life."""
    runtime = _runtimes.get(config)
    if runtime is None:
        runtime = _runtimes[config] = _start(config)
    return runtime


def _start(config: LambdaSettings) -> _Runtime:
    """Load the version, warm it up and build the app that answers every event."""
    started = time.perf_counter()
    ref, loaded = _load(config)
    seconds = time.perf_counter() - started
    events, explanations = _logs(config.settings) if config.log_events else (None, None)
    service = ModelService(
        limits=Limits(max_wait_ms=0.0), metrics=Metrics(), events=events, explanations=explanations
    )
    service.add(ref, loaded, load_seconds=seconds)
    service.warm_up()
    gc.freeze()  # what was loaded lives as long as the container; keep it out of full collections
    log.info("serving %s (version %d), loaded in %.2f s", ref, loaded.version.version, seconds)
    return _Runtime(HttpApp(service), asyncio.new_event_loop(), events)


def _logs(settings: Settings) -> tuple[EventLog, ExplanationLog]:
    """The prediction log and the explanation log under `settings.store_url`; their writers
    (pyarrow, fsspec) are imported only when there is a log to write."""
    from shipyard.explanations.records import ExplanationLog
    from shipyard.monitoring.events import EventLog
    from shipyard.security.encryption import envelope_for
    from shipyard.security.masking import Masker

    cipher = envelope_for(settings)
    masker = Masker.for_home(settings.home, settings.masking_key)
    # Containers run side by side with the same pid: a worker name of its own per container keeps
    # their segments' names apart.
    worker = f"lambda-{uuid.uuid4().hex[:12]}"
    mode = settings.file_mode
    return (
        EventLog(settings.store_url, worker=worker, cipher=cipher, masker=masker, file_mode=mode),
        ExplanationLog(settings.store_url, cipher=cipher, masker=masker, file_mode=mode),
    )


def _load(config: LambdaSettings) -> tuple[ModelRef, LoadedModel]:
    """The version to serve and the reference it is served under: the bundle's, or the registry's."""
    if config.bundle is None:
        from shipyard.registry.registry import Registry  # the metadata store: only for a ref

        assert config.ref is not None  # `from_env` names one of them
        ref = ModelRef.parse(config.ref)
        with Registry(config.settings) as registry:
            return ref, registry.load(ref)
    from shipyard.registry.bundles import open_bundle

    loaded = open_bundle(config.bundle).load(settings=config.settings)
    return loaded.version.ref, loaded


async def _call(app: HttpApp, request: _Request) -> tuple[int, Headers, bytes]:
    """Send one request through the ASGI app; the status, headers and body it answered."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "https",
        "path": request.path,
        "raw_path": request.raw_path,
        "root_path": "",
        "query_string": request.query,
        "headers": request.headers,
        "client": request.client,
        "server": None,
    }
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if delivered:  # asked again after the whole body: the caller is gone once answered
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": request.body, "more_body": False}

    status, headers, chunks = 500, [], []

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, headers, b"".join(chunks)


def _answer(v2: bool, status: int, headers: Headers, body: bytes) -> dict[str, Any]:
    """The Lambda response for the event's payload format: repeated headers as
    `multiValueHeaders` (1.0) or comma-joined with cookies apart (2.0); a body that is not text,
    base64-encoded."""
    grouped: dict[str, list[str]] = {}
    for key, value in headers:
        grouped.setdefault(key.decode("latin-1"), []).append(value.decode("latin-1"))
    text = grouped.get("content-type", [""])[0].lower().startswith(_TEXT_TYPES)
    encoded = body.decode() if text else base64.b64encode(body).decode()
    answer: dict[str, Any] = {"statusCode": status, "body": encoded, "isBase64Encoded": not text}
    if v2:
        cookies = grouped.pop("set-cookie", [])
        answer["headers"] = {k: ", ".join(vs) for k, vs in grouped.items()}
        if cookies:
            answer["cookies"] = cookies
    else:
        answer["headers"] = {k: vs[0] for k, vs in grouped.items() if len(vs) == 1}
        answer["multiValueHeaders"] = {k: vs for k, vs in grouped.items() if len(vs) > 1}
    return answer
