"""The OpenAPI document and the docs page: every route of the table, and each model's typed predict."""

from __future__ import annotations

import json
from typing import Any

import pytest

from servers import ServerProcess
from shipyard.serving.http_app import HttpApp
from shipyard.serving.metrics import Metrics
from shipyard.serving.openapi import docs_page, openapi_document
from shipyard.serving.served import Limits
from shipyard.serving.service import ModelService


@pytest.fixture
def app() -> HttpApp:
    return HttpApp(ModelService(limits=Limits(), metrics=Metrics()))


def test_every_route_the_app_answers_is_in_the_document_with_its_action(app: HttpApp) -> None:
    document = openapi_document(app.service, app.routes.routes)
    for route in app.routes:
        operation = document["paths"][route.pattern][route.method.lower()]
        assert operation.get("x-shipyard-action") == (None if route.action is None else str(route.action))
        assert [p["name"] for p in operation.get("parameters", [])] == list(route.parameters)
    listed = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert listed == {(r.method, r.pattern) for r in app.routes}  # no model served: nothing else


def test_the_docs_page_lists_every_route(app: HttpApp) -> None:
    page = docs_page(app.service, app.routes.routes)
    for route in app.routes:
        assert f"<code>{route.method} {route.pattern}</code>" in page


def test_feedback_drift_and_the_model_list_are_documented(credit_server: ServerProcess) -> None:
    paths = credit_server.http.get("/openapi.json").json()["paths"]
    assert "post" in paths["/v1/feedback"]
    assert "get" in paths["/v1/models/{name}/drift"]
    assert "get" in paths["/v1/models"]


def test_every_documented_route_is_answered_by_the_server(credit_server: ServerProcess) -> None:
    paths: dict[str, Any] = credit_server.http.get("/openapi.json").json()["paths"]
    for pattern, operations in paths.items():
        path = pattern.replace("{name}", "credit").replace("{version}", "1")
        for method in operations:
            response = credit_server.http.request(method.upper(), path, json={} if method == "post" else None)
            assert response.status_code != 405, (method, path, response.text)
            assert "no route" not in response.text, (method, path, response.text)


def test_openapi_is_generated_from_the_contract(credit_server: ServerProcess) -> None:
    document = credit_server.http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    row = document["components"]["schemas"]["credit_row"]
    assert row["properties"]["age"]["type"] == "integer"
    assert set(row["required"]) == {"age", "income", "debt_ratio", "months_employed", "country", "employment"}
    assert "/v1/models/credit/predict" in document["paths"]
    page = credit_server.http.get("/docs")
    assert page.status_code == 200
    assert "months_employed" in page.text


def test_openapi_says_integer_features_are_int64(credit_server: ServerProcess) -> None:
    document = credit_server.http.get("/openapi.json").json()
    schemas = json.dumps(document)
    assert '"type": "integer", "format": "int64"' in schemas
