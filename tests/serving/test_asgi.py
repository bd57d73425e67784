"""The ASGI plumbing of the REST transport: headers, bodies within their limit, responses, the
lifespan, and the one table from errors to HTTP statuses."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import orjson
import pytest

from shipyard.errors import (
    AuthenticationError,
    ContractViolationError,
    InputError,
    NotReadyError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTooLargeError,
    ShipyardError,
    UnknownModelError,
    UnsupportedMediaError,
)
from shipyard.serving.asgi import (
    JSON_TYPES,
    MLFLOW_CODES,
    ClientGoneError,
    Message,
    Scope,
    check_type,
    content_type,
    header,
    lifespan,
    read_body,
    request_id,
    respond_json,
    status_of,
)


def scope(*headers: tuple[bytes, bytes]) -> Scope:
    return {"type": "http", "headers": list(headers)}


def arriving(messages: Iterable[Message]) -> Any:
    """An ASGI `receive` that hands over `messages` in turn."""
    queue = iter(messages)

    async def receive() -> Message:
        return next(queue)

    return receive


def body(limit: int, *chunks: bytes, length: int | None = None, gone: bool = False) -> bytes:
    headers = () if length is None else ((b"content-length", str(length).encode()),)
    messages: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    if gone:
        messages = [*messages[:-1], {"type": "http.disconnect"}]
    return asyncio.run(read_body(scope(*headers), arriving(messages), limit))


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (AuthenticationError("x"), 401),
        (PermissionDeniedError("x"), 403),
        (RateLimitedError("x", retry_after=1.0), 429),
        (ContractViolationError("x"), 422),  # before InputError, its parent
        (InputError("x"), 400),
        (RequestTooLargeError("x"), 413),
        (UnsupportedMediaError("x"), 415),
        (UnknownModelError("x"), 404),
        (NotReadyError("x"), 503),
        (ShipyardError("x"), 500),
    ],
)
def test_each_error_has_one_status_and_an_mlflow_code(error: ShipyardError, status: int) -> None:
    assert status_of(error) == status
    assert status in MLFLOW_CODES


def test_an_errors_type_is_its_class_in_snake_case() -> None:
    assert ContractViolationError("x").type_name() == "contract_violation"
    assert UnknownModelError("x").type_name() == "unknown_model"


def test_a_body_is_read_whole_from_its_chunks_and_refused_past_the_limit() -> None:
    assert body(10, b"abc", b"def") == b"abcdef"
    assert body(10, b"") == b""
    with pytest.raises(RequestTooLargeError, match="has 11 bytes; this server takes at most 10"):
        body(10, b"x", length=11)
    with pytest.raises(RequestTooLargeError, match="over 10 bytes"):
        body(10, b"123456", b"123456")  # chunked: no length to check first
    with pytest.raises(ClientGoneError):
        body(10, b"abc", b"def", gone=True)


def test_headers_media_types_and_request_ids_are_read_as_sent() -> None:
    request = scope(
        (b"content-type", b"Application/JSON; charset=utf-8"),
        (b"x-request-id", b"abc-123"),
        (b"x-request-id", b"second"),
    )
    assert header(request, b"x-request-id") == "abc-123"
    assert header(request, b"authorization") is None
    assert content_type(request) == b"application/json"
    assert content_type(scope()) == b""
    assert request_id(request) == "abc-123"
    assert request_id(scope((b"x-request-id", b"a\r\nb"))) is None
    assert request_id(scope((b"x-request-id", b"x" * 129))) is None


def test_a_body_under_another_media_type_is_refused_naming_what_is_read() -> None:
    check_type(scope(), JSON_TYPES)  # curl without -H, and no type at all, are read as JSON
    check_type(scope((b"content-type", b"application/x-www-form-urlencoded")), JSON_TYPES)
    with pytest.raises(
        UnsupportedMediaError, match="'application/xml'; this endpoint reads application/json"
    ):
        check_type(scope((b"content-type", b"application/xml")), JSON_TYPES)


def test_a_json_answer_carries_its_length_type_and_request_id() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    assert asyncio.run(respond_json(send, 201, {"ok": True}, request_id="abc")) == 201
    start, whole = sent
    assert start["status"] == 201
    assert dict(start["headers"]) == {
        b"content-type": b"application/json",
        b"content-length": str(len(whole["body"])).encode(),
        b"x-request-id": b"abc",
    }
    assert orjson.loads(whole["body"]) == {"ok": True}


def test_the_lifespan_answers_startup_and_shutdown() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(lifespan(arriving([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]), send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
