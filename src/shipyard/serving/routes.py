"""The REST routes as one table: method, pattern, handler, required action.

The HTTP dispatch (`HttpApp`), the authorization check (`RouteTable.action`) and the OpenAPI
document (`openapi.py`) are all read from the one table, so a route cannot be answered without
being documented and guarded. Matching splits the path at '/' and compares it with each pattern
of the same length and first part: a few microseconds, where a general router costs tens.

A pattern's parts in braces (`{name}`, `{version}`) take any one part of the path; a part in
braces followed by a suffix (KServe's `{name}:explain`) takes any part that ends with the suffix
(and has more before it); every other part must be equal. A `GET` route answers `HEAD` too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipyard.security.access import Action

__all__ = ["Handler", "Outcome", "Route", "RouteTable"]

Outcome = tuple[int, str, str]
"""What a handler reports once it has answered: the status sent, the model and version named."""

Handler = Callable[[Any, Any, Any, Mapping[str, str], float], Awaitable[Outcome]]
"""A route's handler: (scope, receive, send, the pattern's parameters, arrival time) -> outcome."""

_METHODS = {"GET": ("GET", "HEAD"), "POST": ("POST",)}


@dataclass(frozen=True)
class Route:
    """One route of the REST API.

    Args:
        method: `GET` (which answers `HEAD` too) or `POST`.
        pattern: the path, with `{name}` parts for parameters (`/v1/models/{name}/predict`).
        handler: what answers it.
        action: what the caller's role must allow; None for an open route (health probes).
        summary: one line for the OpenAPI document and the docs page.
        protocol: the `protocol` label of the request metrics; "ops" routes are not counted.
        single: the route answers for the one model a server serves (`/invocations`), which is
            then the model its action is authorized on.
    """

    method: str
    pattern: str
    handler: Handler = field(compare=False)
    action: Action | None
    summary: str
    protocol: str = "ops"
    single: bool = False
    parts: tuple[str, ...] = field(init=False, compare=False)
    _matchers: tuple[tuple[str, str], ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"route {self.pattern!r} has method {self.method!r}; expected GET or POST")
        parts = tuple(self.pattern.strip("/").split("/"))
        object.__setattr__(self, "parts", parts)
        # Per part: ("", literal) to be equal, or (parameter, suffix) to take; suffix "" for none.
        matchers = []
        for part in parts:
            if part.startswith("{"):
                name, _, suffix = part[1:].partition("}")
                matchers.append((name, suffix))
            else:
                matchers.append(("", part))
        object.__setattr__(self, "_matchers", tuple(matchers))

    @property
    def methods(self) -> tuple[str, ...]:
        """The HTTP methods it answers."""
        return _METHODS[self.method]

    @property
    def parameters(self) -> tuple[str, ...]:
        """The names of the pattern's parameters, in order."""
        return tuple(name for name, _ in self._matchers if name)

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        """The parameters of a path split at '/', or None when the path is not this route's."""
        if len(parts) != len(self.parts):
            return None
        params: dict[str, str] = {}
        for (name, text), theirs in zip(self._matchers, parts, strict=True):
            if not name:
                if text != theirs:
                    return None
            elif not text:
                params[name] = theirs
            elif len(theirs) > len(text) and theirs.endswith(text):
                params[name] = theirs[: -len(text)]
            else:
                return None
        return params


class RouteTable:
    """The routes of one app, indexed for matching.

    Args:
        routes: every route; no two may have the same method and pattern.

    Raises:
        ValueError: two routes have the same method and pattern.
    """

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        seen = set()
        self._index: dict[tuple[int, str], list[Route]] = {}
        open_routes = [r.parts for r in self.routes if r.action is None]
        self._open_heads = frozenset(p[0] for p in open_routes if len(p) == 1)
        self._open_prefixes = frozenset(p[:2] for p in open_routes if len(p) > 2)
        for route in self.routes:
            if (route.method, route.pattern) in seen:
                raise ValueError(f"route {route.method} {route.pattern} is in the table twice")
            seen.add((route.method, route.pattern))
            self._index.setdefault((len(route.parts), route.parts[0]), []).append(route)

    def __iter__(self) -> Any:
        return iter(self.routes)

    def find(self, method: str, parts: Sequence[str]) -> tuple[Route, dict[str, str]] | None:
        """The route that answers `method` on a path split at '/', with its parameters."""
        for route in self._index.get((len(parts), parts[0]), ()):
            if method in route.methods:
                params = route.match(parts)
                if params is not None:
                    return route, params
        return None

    def allowed(self, parts: Sequence[str]) -> tuple[str, ...]:
        """The methods a path answers to; () when no route has that path."""
        methods: list[str] = []
        for route in self._index.get((len(parts), parts[0]), ()):
            if route.match(parts) is not None:
                methods += [m for m in route.methods if m not in methods]
        return tuple(methods)

    def action(
        self,
        method: str,
        parts: Sequence[str],
        found: tuple[Route, Mapping[str, str]] | None,
        single: str | None,
    ) -> tuple[Action | None, str | None]:
        """The action a request must be allowed, and the model it names; (None, None) when open.

        A request for no route is asked the same before it learns so (a stranger gets 401, not 404,
        so which paths exist is not told): read for a GET, predict for a POST, nothing under the
        open routes' paths.

        Args:
            method: the HTTP method.
            parts: the path split at '/'.
            found: the route and parameters `find` matched, or None.
            single: the model a server serving one model answers `/invocations` for.
        """
        if found is not None:
            route, params = found
            if route.action is None:
                return None, None
            return route.action, single if route.single else params.get("name")
        head = parts[0]
        if method == "POST":
            if head in ("v1", "v2") and len(parts) >= 3 and parts[1] == "models":
                return Action.PREDICT, parts[2]
            return Action.PREDICT, single if head == "invocations" else None
        if (len(parts) == 1 and head in self._open_heads) or tuple(parts[:2]) in self._open_prefixes:
            return None, None
        if head in ("v1", "v2") and len(parts) >= 3 and parts[1] == "models":
            return Action.READ, parts[2]
        return Action.READ, None
