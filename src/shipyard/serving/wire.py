"""Names Shipyard's server and its client agree on over the wire; both transports import them here."""

from __future__ import annotations

__all__ = ["GRPC_SERVICE", "RETRY_AFTER_KEY", "VIOLATIONS_KEY"]

GRPC_SERVICE = "inference.GRPCInferenceService"
"""The gRPC service the server answers (the Open Inference Protocol's)."""

VIOLATIONS_KEY = "shipyard-violations-bin"
"""The gRPC trailer that carries a refused request's contract violations, as a JSON list."""

RETRY_AFTER_KEY = "retry-after"
"""A rate-limited answer's header (REST) or trailer (gRPC): whole seconds to wait; over gRPC its
presence is what tells a rate limit from a too-large request."""
