"""``GET /openapi.json``: the routes this server answers, as an OpenAPI 3.2 document.

Every operation says what it takes (parameters, request body with its content type and
JSON schema) and what it answers (success bodies, and problem+json for every 4xx), from
:mod:`vendo.api.v1.openapi_spec`. 3.2, not 3.1: ``QUERY /v1/models`` (search, as the
JavaScript client sends it) is an operation of its own only since 3.2.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from vendo import __version__
from vendo.api.responses import JSONResponse
from vendo.api.v1.openapi_accounts import account_schemas
from vendo.api.v1.openapi_deployments import deployment_schemas
from vendo.api.v1.openapi_schemas import components
from vendo.api.v1.openapi_spec import OPERATIONS, PROBLEM

__all__ = ["document", "openapi_route", "undescribed"]

_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
OPENAPI_VERSION = "3.2.0"
_ERRORS = {
    "4XX": {
        "description": "the request was refused; `detail` says why, 422 lists each field",
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}


def _summary(route: Route) -> str:
    doc = (route.endpoint.__doc__ or "").strip()
    if doc:
        return doc.splitlines()[0].rstrip(".")
    return route.name.replace("_", " ").capitalize()


def _declared(routes: list[BaseRoute]) -> list[tuple[str, Route]]:
    found: list[tuple[str, Route]] = []
    for route in routes:
        if isinstance(route, Route):
            found.extend((m, route) for m in sorted(route.methods or ()) if m != "HEAD")
    return found


def undescribed(routes: list[BaseRoute]) -> list[str]:
    """``METHOD path`` of each route the document has no request/response description
    for (a test keeps this empty)."""
    return [f"{m} {r.path}" for m, r in _declared(routes) if (m, r.path) not in OPERATIONS]


def document(routes: list[BaseRoute], hardware_skus: list[str]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, route in _declared(routes):
        path = _PARAM.sub(r"{\1}", route.path)
        spec = copy.deepcopy(OPERATIONS.get((method, route.path), {}))
        operation: dict[str, Any] = {
            "summary": _summary(route),
            "operationId": f"{route.name}_{method.lower()}",
        }
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ]
        params += spec.pop("parameters", [])
        if params:
            operation["parameters"] = params
        operation["security"] = spec.pop("security", [{"bearer": []}])
        operation.update(spec)
        operation["responses"] = {
            **(spec.get("responses") or {"200": {"description": "success"}}),
            **_ERRORS,
        }
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Vendo",
            "version": __version__,
            "description": "Replicate's HTTP API, self-hosted, plus Vendo's own routes.",
        },
        "components": {
            "schemas": {
                **components(hardware_skus),
                **account_schemas(),
                **deployment_schemas(hardware_skus),
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }


def openapi_route(routes: list[BaseRoute], hardware_skus: list[str]) -> Route:
    body: dict[str, Any] = {}

    async def openapi(request: Request) -> Response:
        """The OpenAPI document of this server."""
        return JSONResponse(body)

    route = Route("/openapi.json", openapi, methods=["GET"])
    body.update(document([*routes, route], hardware_skus))  # it describes itself too
    return route
