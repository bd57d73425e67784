"""Authorization by the route table, against a real server with `--auth required`; and `admit`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from commands import shipyard_cli
from servers import ServerProcess, credit_row
from shipyard.errors import RateLimitedError
from shipyard.security.access import ACTIONS, Action, Role
from shipyard.security.guard import Guard
from shipyard.serving.auth import admit
from shipyard.serving.http_app import HttpApp
from shipyard.serving.metrics import Metrics
from shipyard.serving.routes import Route
from shipyard.serving.served import Limits
from shipyard.serving.service import ModelService

ROUTES = HttpApp(ModelService(limits=Limits(), metrics=Metrics())).routes.routes


@pytest.fixture(scope="module")
def keys(credit_home: Path) -> dict[Role, str]:
    """A key of every role, made with the CLI."""
    made = {}
    for role in Role:
        done = shipyard_cli(
            credit_home, "keys", "create", "--name", f"{role.name.lower()}-key", "--role", str(role)
        )
        assert done.returncode == 0, done.stderr
        made[role] = done.stdout.strip().splitlines()[0]
    return made


@pytest.fixture(scope="module")
def guarded(credit_home: Path, keys: dict[Role, str]) -> Iterator[ServerProcess]:
    server = ServerProcess(credit_home, ["credit@production"], "--auth", "required")
    try:
        yield server.wait_ready()
    finally:
        server.terminate()


def call(server: ServerProcess, route: Route, key: str | None) -> Any:
    path = route.pattern.replace("{name}", "credit").replace("{version}", "1")
    body = {"instances": [credit_row()]} if route.method == "POST" else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return server.http.request(route.method, path, json=body, headers=headers)


def route_id(route: Route) -> str:
    return f"{route.method} {route.pattern}"


@pytest.mark.parametrize("route", [r for r in ROUTES if r.action is not None], ids=route_id)
def test_an_action_guarded_route_refuses_a_key_whose_role_lacks_it(
    guarded: ServerProcess, keys: dict[Role, str], route: Route
) -> None:
    assert route.action is not None
    assert call(guarded, route, None).status_code == 401
    need = ACTIONS[route.action]
    for role, key in keys.items():
        status = call(guarded, route, key).status_code
        if role < need:
            assert status == 403, (role, route.pattern, status)
        else:
            assert status not in (401, 403), (role, route.pattern, status)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.action is None], ids=route_id)
def test_an_open_route_needs_no_key(guarded: ServerProcess, route: Route) -> None:
    assert call(guarded, route, None).status_code not in (401, 403)


def test_admit_lets_anyone_in_when_auth_is_off_but_keeps_the_rate() -> None:
    service = ModelService(limits=Limits(), metrics=Metrics(), guard=Guard(required=False, rate=1, burst=1))

    async def twice() -> Any:
        first = await admit(service, None, Action.PREDICT, "credit", client="10.0.0.7")
        with pytest.raises(RateLimitedError):
            await admit(service, None, Action.PREDICT, "credit", client="10.0.0.7")
        return first

    assert asyncio.run(twice()).role is Role.ADMIN
