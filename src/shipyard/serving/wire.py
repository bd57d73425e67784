"""Names Shipyard's server and its client agree on over the wire; both transports import them here."""

from __future__ import annotations

__all__ = ["GRPC_SERVICE", "VIOLATIONS_KEY"]

GRPC_SERVICE = "inference.GRPCInferenceService"
"""The gRPC service the server answers (the Open Inference Protocol's)."""

VIOLATIONS_KEY = "shipyard-violations-bin"
"""The gRPC trailer that carries a refused request's contract violations, as a JSON list."""
