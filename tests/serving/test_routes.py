"""The route table: matching a path, the methods a path answers, and the action a request needs."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from shipyard.security.access import Action
from shipyard.serving.routes import Outcome, Route, RouteTable


async def answer(
    scope: object, receive: object, send: object, params: Mapping[str, str], arrived: float
) -> Outcome:
    return 200, params.get("name", ""), params.get("version", "")


TABLE = RouteTable(
    [
        Route("POST", "/v1/models/{name}/predict", answer, Action.PREDICT, "predict", "rest"),
        Route("POST", "/invocations", answer, Action.PREDICT, "mlflow", "mlflow", single=True),
        Route("GET", "/v1/models/{name}", answer, Action.READ, "a model"),
        Route("GET", "/v2/models/{name}/versions/{version}/ready", answer, Action.READ, "ready"),
        Route("GET", "/v2/health/live", answer, None, "live"),
        Route("GET", "/healthz", answer, None, "alive"),
    ]
)


def split(path: str) -> list[str]:
    return path.strip("/").split("/")


def test_a_pattern_matches_only_its_own_paths_and_names_its_parameters() -> None:
    found = TABLE.find("GET", split("/v2/models/credit/versions/3/ready"))
    assert found is not None
    route, params = found
    assert route.pattern == "/v2/models/{name}/versions/{version}/ready"
    assert params == {"name": "credit", "version": "3"}
    assert route.parameters == ("name", "version")
    assert TABLE.find("GET", split("/v2/models/credit/versions/3")) is None
    assert TABLE.find("GET", split("/v2/models/credit/releases/3/ready")) is None


def test_a_get_route_answers_head_and_a_post_route_only_post() -> None:
    assert TABLE.find("HEAD", split("/healthz")) is not None
    assert TABLE.find("POST", split("/healthz")) is None
    assert TABLE.find("GET", split("/v1/models/credit/predict")) is None


def test_the_methods_a_path_answers_come_from_the_table() -> None:
    assert TABLE.allowed(split("/v1/models/credit/predict")) == ("POST",)
    assert TABLE.allowed(split("/healthz")) == ("GET", "HEAD")
    assert TABLE.allowed(split("/v1/models/credit/explain")) == ()


def test_a_route_in_the_table_twice_is_refused() -> None:
    route = Route("GET", "/healthz", answer, None, "alive")
    with pytest.raises(ValueError, match="GET /healthz is in the table twice"):
        RouteTable([route, route])


def test_a_route_with_another_method_is_refused() -> None:
    with pytest.raises(ValueError, match="method 'PUT'; expected GET or POST"):
        Route("PUT", "/v1/models", answer, Action.READ, "models")


@pytest.mark.parametrize(
    ("method", "path", "action", "target"),
    [
        ("POST", "/v1/models/credit/predict", Action.PREDICT, "credit"),
        ("POST", "/invocations", Action.PREDICT, "only"),  # the one model served
        ("GET", "/v1/models/credit", Action.READ, "credit"),
        ("GET", "/healthz", None, None),
        ("GET", "/v2/health/live", None, None),
        # No route: a stranger is asked for credentials before learning that no route is there.
        ("GET", "/v1/models/credit/secrets", Action.READ, "credit"),
        ("POST", "/v2/models/credit/other", Action.PREDICT, "credit"),
        ("GET", "/nope", Action.READ, None),
        ("PUT", "/healthz", None, None),
        ("GET", "/v2/health/other", None, None),
    ],
)
def test_the_action_a_request_needs_is_its_routes(
    method: str, path: str, action: Action | None, target: str | None
) -> None:
    parts = split(path)
    assert TABLE.action(method, parts, TABLE.find(method, parts), "only") == (action, target)


def test_a_parameter_with_a_suffix_takes_a_part_that_ends_with_it() -> None:
    kserve = Route("POST", "/v1/models/{name}:explain", answer, Action.PREDICT, "kserve", "kserve")
    table = RouteTable([kserve, Route("GET", "/v1/models/{name}", answer, Action.READ, "a model")])
    assert kserve.parameters == ("name",)
    assert kserve.match(["v1", "models", "credit:explain"]) == {"name": "credit"}
    assert kserve.match(["v1", "models", "a:b:explain"]) == {"name": "a:b"}
    for other in ("credit", ":explain", "credit:predict", "credit:explainx"):
        assert kserve.match(["v1", "models", other]) is None, other
    found = table.find("POST", ["v1", "models", "credit:explain"])
    assert found is not None and found[0] is kserve
    assert table.action("POST", ["v1", "models", "credit:explain"], found, None) == (Action.PREDICT, "credit")
    assert sorted(table.allowed(["v1", "models", "credit:explain"])) == ["GET", "HEAD", "POST"]
