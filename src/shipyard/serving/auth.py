"""What each route of the server is, as an action to authorize, and the one async step that
asks the guard about a request (off the event loop when it must read the metadata store).

| route | action |
| --- | --- |
| health, readiness, `/version`, OIP `health/*`, gRPC `ServerLive`, `ServerReady` | open |
| `POST .../predict`, `/invocations`, OIP `infer`, gRPC `ModelInfer` | predict (on the model) |
| `POST /v1/feedback` | feedback |
| every other `GET` (models, drift, `/metrics`, `/docs`, OIP `models/*` and `models/*/ready`) | read |
| gRPC `ModelReady`, `ModelMetadata`, `ServerMetadata` | read |

The open routes answer with a bare status: which models are served is for callers who may read
(`/readyz` adds its `models` only for a credential that verifies), and a model's own readiness
needs one, so that an unknown name and a served one look the same to a stranger (401 both).
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

from shipyard.security.access import Action, Principal

if TYPE_CHECKING:
    from shipyard.serving.service import ModelService

__all__ = ["admit", "http_action"]

_OPEN = frozenset({"healthz", "readyz", "ping", "health", "version"})


def http_action(method: str, parts: list[str], single_model: str | None) -> tuple[Action | None, str | None]:
    """The action and model a request means; (None, None) for the open routes.

    Args:
        method: the HTTP method.
        parts: the path split at '/'.
        single_model: the model `/invocations` answers for, when the server serves one.
    """
    head = parts[0] if parts else ""
    if method == "POST":
        if head == "v1" and parts[1:2] == ["feedback"]:
            return Action.FEEDBACK, None
        if head == "invocations":
            return Action.PREDICT, single_model
        if head in ("v1", "v2") and len(parts) >= 3 and parts[1] == "models":
            return Action.PREDICT, parts[2]
        return Action.PREDICT, None
    if len(parts) == 1 and head in _OPEN:
        return None, None
    if head == "v2" and len(parts) >= 2 and parts[1] == "health":
        return None, None
    if head in ("v1", "v2") and len(parts) >= 3 and parts[1] == "models":
        return Action.READ, parts[2]
    return Action.READ, None


async def admit(
    service: ModelService, token: str | None, action: Action, name: str | None, *, client: str | None
) -> Principal:
    """The request's principal once the service's guard allows it.

    Args:
        name: the model or deployment the route names; a deployment is authorized as the
            model it serves.
        client: the caller's address, for the limits of callers without a principal.

    Raises:
        AuthenticationError, PermissionDeniedError, RateLimitedError: as `Guard` decides.
    """
    guard, target = service.guard, service.model_of(name)
    principal = guard.quick(token)
    if principal is None:
        loop = asyncio.get_running_loop()
        principal = await loop.run_in_executor(
            None, functools.partial(guard.identify, token, action=action, target=target, client=client)
        )
    guard.admit(principal, action, target, client=client)
    return principal
