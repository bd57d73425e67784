"""The one async step that asks the guard about a request (off the event loop when it must read
the metadata store), for both transports.

Each REST route's action is in the route table (`HttpApp`'s, see `routes.py`), and the gRPC
transport names its own; together:

| route | action |
| --- | --- |
| health, readiness, `/version`, OIP `health/*`, gRPC `ServerLive`, `ServerReady` | open |
| `POST .../predict`, `/invocations`, OIP `infer`, gRPC `ModelInfer` | predict (on the model) |
| `POST .../explain`, `:explain`, OIP `explain`, `GET .../explanations/{id}` | predict (on the model) |
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

__all__ = ["admit"]


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
