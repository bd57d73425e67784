"""The OpenAPI 3.1 document of a server and its docs page, generated from the app's route table
(every route, with the action its caller's role must allow) and the served models' contracts (a
typed predict operation per model)."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from importlib.metadata import version as package_version
from typing import Any

from shipyard.attribution.base import METHODS
from shipyard.core.contract import Contract, Feature
from shipyard.core.dtypes import DType
from shipyard.explanations.explaining import DEFAULT_TOP
from shipyard.registry.loaded import example_row
from shipyard.serving.routes import Route
from shipyard.serving.service import ModelService

__all__ = ["docs_page", "openapi_document"]

_JSON_TYPES = {DType.INT: "integer", DType.FLOAT: "number", DType.BOOL: "boolean", DType.STRING: "string"}


def feature_schema(feature: Feature) -> dict[str, Any]:
    """The JSON Schema of one feature's value, from its contract."""
    schema: dict[str, Any] = {"type": _JSON_TYPES[feature.dtype]}
    if feature.dtype is DType.INT:
        schema["format"] = "int64"  # beyond it a value is a violation, never wrapped
    if feature.nullable or feature.on_missing != "reject":
        schema["type"] = [schema["type"], "null"]
    if feature.on_out_of_range == "reject":
        if feature.min is not None:
            schema["minimum"] = feature.min
        if feature.max is not None:
            schema["maximum"] = feature.max
    if feature.categories is not None and feature.on_unseen_category == "reject":
        schema["enum"] = list(feature.categories)
    notes = [f"dtype {feature.dtype}"]
    if feature.min is not None or feature.max is not None:
        notes.append(
            f"training range [{feature.min}, {feature.max}], out of range: {feature.on_out_of_range}"
        )
    if feature.categories is not None:
        notes.append(f"categories {list(feature.categories)[:20]}, unseen: {feature.on_unseen_category}")
    notes.append(f"missing: {feature.on_missing}")
    schema["description"] = "; ".join(notes)
    return schema


def _row_schema(contract: Contract) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {f.name: feature_schema(f) for f in contract.features},
        "required": [f.name for f in contract.features],
    }


def openapi_document(service: ModelService, routes: Sequence[Route]) -> dict[str, Any]:
    """The OpenAPI document: every route of the table, and one predict operation per served
    model, typed by its contract.

    Args:
        service: the data plane, for the served models.
        routes: the app's route table.
    """
    paths: dict[str, Any] = {route.pattern: {} for route in routes}
    for route in routes:
        paths[route.pattern][route.method.lower()] = _operation(route)
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "message": {"type": "string"},
                        "request_id": {"type": "string"},
                        "violations": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "row": {"type": ["integer", "null"]},
                                    "feature": {"type": "string"},
                                    "value": {},
                                    "reason": {"type": "string"},
                                },
                            },
                        },
                    },
                }
            },
        }
    }
    errors = {
        "400": "malformed body",
        "404": "no such model",
        "413": "body or row count over the limit",
        "415": "unsupported content type",
        "422": "rows break the contract; every violation listed",
        "503": "model still loading",
    }
    for served in service.models.values():
        contract = served.version.contract
        key = served.name.replace("-", "_").replace(".", "_")
        row = _row_schema(contract)
        schemas[f"{key}_row"] = row
        schemas[f"{key}_request"] = {
            "oneOf": [
                {
                    "type": "object",
                    "properties": {
                        "instances": {"type": "array", "items": {"$ref": f"#/components/schemas/{key}_row"}}
                    },
                    "required": ["instances"],
                },
                {
                    "type": "object",
                    "properties": {
                        "inputs": {
                            "type": "object",
                            "properties": {
                                f.name: {"type": "array", "items": feature_schema(f)}
                                for f in contract.features
                            },
                        }
                    },
                    "required": ["inputs"],
                },
            ]
        }
        label: dict[str, Any] = (
            {"type": "number"} if contract.classes is None else {"enum": list(contract.classes)}
        )
        answer: dict[str, Any] = {
            "type": "object",
            "properties": {
                "request_id": {"type": "string"},
                "model": {"type": "string"},
                "version": {"type": "integer"},
                "predictions": {"type": "array", "items": label},
            },
            "required": ["request_id", "model", "version", "predictions"],
        }
        if contract.classes is not None:
            answer["properties"]["probabilities"] = {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {str(c): {"type": "number"} for c in contract.classes},
                },
            }
        schemas[f"{key}_response"] = answer
        paths[f"/v1/models/{served.name}/predict"] = {
            "post": {
                "summary": f"Predict with {served.name} ({served.ref}, version {served.version.version})",
                "operationId": f"predict_{key}",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{key}_request"},
                            "example": {"instances": [example_row(contract)]},
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "predictions",
                        "content": {
                            "application/json": {"schema": {"$ref": f"#/components/schemas/{key}_response"}}
                        },
                    },
                    **{
                        code: {
                            "description": text,
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                            },
                        }
                        for code, text in errors.items()
                    },
                },
            }
        }
        paths[f"/v1/models/{served.name}/explain"] = _explain_operation(served.name, key, contract, errors)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Shipyard model server",
            "version": package_version("shipyard"),
            "description": "Generated from the contracts of the served models.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _explain_operation(name: str, key: str, contract: Contract, errors: dict[str, str]) -> dict[str, Any]:
    """The typed explain operation of one served model: its predict request plus the options,
    its predict answer plus `explanation`."""
    options = {
        "type": "object",
        "properties": {
            "method": {"enum": list(METHODS), "default": "auto"},
            "output": {"type": ["string", "integer"], "description": "a class label, or 'value'"},
            "top": {"type": "integer", "minimum": 1, "default": DEFAULT_TOP},
        },
    }
    answer = {
        "allOf": [
            {"$ref": f"#/components/schemas/{key}_response"},
            {
                "type": "object",
                "properties": {"explanation": {"type": "object"}},
                "required": ["explanation"],
            },
        ]
    }
    refusals = {
        **errors,
        "422": "rows break the contract, or the model cannot have the explanation asked for",
    }
    return {
        "post": {
            "summary": f"Predict with {name} and explain each prediction",
            "operationId": f"explain_{key}",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"allOf": [{"$ref": f"#/components/schemas/{key}_request"}, options]},
                        "example": {"instances": [example_row(contract)], "top": DEFAULT_TOP},
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "predictions and their explanation",
                    "content": {"application/json": {"schema": answer}},
                },
                **{
                    code: {
                        "description": text,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    }
                    for code, text in refusals.items()
                },
            },
        }
    }


def _operation(route: Route) -> dict[str, Any]:
    """The OpenAPI operation of one route of the table (untyped: the models' own are typed)."""
    needs = "open to anyone" if route.action is None else f"needs a role that may '{route.action}'"
    operation: dict[str, Any] = {
        "summary": route.summary,
        "description": f"{route.method} {route.pattern}: {needs}.",
        "operationId": f"{route.method.lower()}_{_slug(route.pattern)}",
        "responses": {"200": {"description": "OK"}},
    }
    if route.action is not None:
        operation["x-shipyard-action"] = str(route.action)
    if route.parameters:
        operation["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in route.parameters
        ]
    if route.method == "POST":
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    return operation


def _slug(pattern: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in pattern.strip("/")) or "root"


def docs_page(service: ModelService, routes: Sequence[Route]) -> str:
    """A self-contained HTML page: each model's contract, an example request, every route."""
    sections = []
    for served in service.models.values():
        contract = served.version.contract
        rows = "".join(
            f"<tr><td>{html.escape(f.name)}</td><td>{f.dtype}</td><td>{html.escape(feature_schema(f)['description'])}</td></tr>"
            for f in contract.features
        )
        example = json.dumps({"instances": [example_row(contract)]})
        curl = f"curl -H 'Content-Type: application/json' -d '{example}' http://HOST/v1/models/{served.name}/predict"
        sections.append(
            f"<h2>{html.escape(served.name)} <small>({html.escape(str(served.ref))}, version "
            f"{served.version.version})</small></h2>"
            f"<table><tr><th>feature</th><th>type</th><th>rules</th></tr>{rows}</table>"
            f"<h3>Example</h3><pre>{html.escape(curl)}</pre>"
        )
    listed = "".join(
        f"<li><code>{html.escape(f'{r.method} {r.pattern}')}</code> {html.escape(r.summary)}</li>"
        for r in routes
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Shipyard model server</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "td,th{border:1px solid #ccc;padding:.2em .5em}table{border-collapse:collapse}"
        "pre{background:#f4f4f4;padding:1em;white-space:pre-wrap}</style></head><body>"
        "<h1>Shipyard model server</h1><p>OpenAPI: <a href='/openapi.json'>/openapi.json</a></p>"
        f"{''.join(sections)}<h2>Routes</h2><ul>{listed}</ul></body></html>"
    )
