"""``GET /openapi.json``: the routes this server answers, as an OpenAPI 3.1 document.

Replicate's own routes are described by Replicate's reference (spec/replicate-api.md);
this document lists them with a one-line summary, and Vendo's additions (model upload,
build logs...) with the summary their handler's docstring gives.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vendo import __version__

__all__ = ["document", "openapi_route"]

_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def _summary(route: Route) -> str:
    doc = (route.endpoint.__doc__ or "").strip()
    if doc:
        return doc.splitlines()[0].rstrip(".")
    return route.name.replace("_", " ").capitalize()


def document(routes: list[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        path = _PARAM.sub(r"{\1}", route.path)
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ]
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            operation: dict[str, Any] = {
                "summary": _summary(route),
                "operationId": f"{route.name}_{method.lower()}",
                "responses": {"default": {"description": "See spec/replicate-api.md"}},
            }
            if params:
                operation["parameters"] = params
            if not path.endswith("/download") and "stream" not in path:
                operation["security"] = [{"bearer": []}]
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Vendo",
            "version": __version__,
            "description": "Replicate's HTTP API, self-hosted, plus Vendo's own routes.",
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }


def openapi_route(routes: list[BaseRoute]) -> Route:
    body = document(routes)

    async def openapi(request: Request) -> Response:
        """The OpenAPI document of this server."""
        return JSONResponse(body)

    return Route("/openapi.json", openapi, methods=["GET"])
