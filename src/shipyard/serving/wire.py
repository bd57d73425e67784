"""Names Shipyard's server and its client agree on over the wire; both transports import them here."""

from __future__ import annotations

from shipyard.errors import (
    AuthenticationError,
    ContractViolationError,
    ExplanationError,
    FeedbackError,
    InputError,
    NotFoundError,
    NotReadyError,
    PermissionDeniedError,
    PredictionError,
    RateLimitedError,
    RequestTooLargeError,
    ShipyardError,
    UnknownModelError,
    UnsupportedExplanationError,
    UnsupportedMediaError,
)

__all__ = ["GRPC_CODES", "GRPC_SERVICE", "HTTP_STATUSES", "RETRY_AFTER_KEY", "VIOLATIONS_KEY"]

GRPC_SERVICE = "inference.GRPCInferenceService"
"""The gRPC service the server answers (the Open Inference Protocol's)."""

VIOLATIONS_KEY = "shipyard-violations-bin"
"""The gRPC trailer that carries a refused request's contract violations, as a JSON list."""

RETRY_AFTER_KEY = "retry-after"
"""A rate-limited answer's header (REST) or trailer (gRPC): whole seconds to wait; over gRPC its
presence is what tells a rate limit from a too-large request."""

HTTP_STATUSES: tuple[tuple[type[ShipyardError], int], ...] = (
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (RateLimitedError, 429),
    (ContractViolationError, 422),
    (UnsupportedExplanationError, 422),
    (InputError, 400),
    (FeedbackError, 400),
    (RequestTooLargeError, 413),
    (UnsupportedMediaError, 415),
    (UnknownModelError, 404),
    (NotFoundError, 404),
    (NotReadyError, 503),
    (PredictionError, 500),
    (ExplanationError, 500),
)
"""The one table from errors to HTTP statuses. The server answers an error with the status of the
first class it is an instance of; the client reads a status whose body names no error type as the
first class listed with it."""

GRPC_CODES: tuple[tuple[type[ShipyardError], str], ...] = (
    (AuthenticationError, "UNAUTHENTICATED"),
    (PermissionDeniedError, "PERMISSION_DENIED"),
    (RateLimitedError, "RESOURCE_EXHAUSTED"),
    (ContractViolationError, "INVALID_ARGUMENT"),
    (InputError, "INVALID_ARGUMENT"),
    (UnsupportedExplanationError, "FAILED_PRECONDITION"),
    (RequestTooLargeError, "RESOURCE_EXHAUSTED"),
    (UnknownModelError, "NOT_FOUND"),
    (NotReadyError, "UNAVAILABLE"),
    (ExplanationError, "INTERNAL"),
    (PredictionError, "INTERNAL"),
)
"""The one table from errors to gRPC status codes (by name: the HTTP side needs no grpc). The
server answers an error with the code of the first class it is an instance of; the client reads a
code as the last class listed with it, the most general (a trailer tells the others apart: the
violations for a contract violation, `retry-after` for a rate limit). An explanation the model
cannot have is FAILED_PRECONDITION (its own code, so the client tells it from malformed input); an
exact explanation that missed its tolerance is INTERNAL, listed before `PredictionError` so that
INTERNAL still reads as a prediction failure."""
