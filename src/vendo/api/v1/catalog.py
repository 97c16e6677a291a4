"""Collections and search. Vendo has no curated collections yet: the list is empty and
every slug is unknown; search looks through the models the caller may see."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vendo.api.responses import JSONResponse
from vendo.api.v1.builds import latest_build
from vendo.api.v1.context import base_url, call, caller, page, platform
from vendo.api.v1.policy import model_viewers
from vendo.api.v1.render import model_json
from vendo.errors import FieldError, InvalidInput, NotFound

__all__ = ["routes"]


async def list_collections(request: Request) -> Response:
    """List collections (none yet)."""
    await caller(request)
    return page(request, [], None, None)


async def get_collection(request: Request) -> Response:
    """Get a collection."""
    await caller(request)
    raise NotFound(f"collection {request.path_params['slug']!r} not found")


async def search(request: Request) -> Response:
    """Search models (beta): ``query`` and ``limit`` (1-50, default 20)."""
    who = await caller(request)
    p = platform(request)
    query = request.query_params.get("query", "").strip()
    if not query:
        raise InvalidInput([FieldError("query", "missing", "query is required")])
    raw_limit = request.query_params.get("limit", "20")
    # isascii: str.isdigit() is true of digits int() refuses ("²"); the length keeps
    # int() of thousands of digits away
    if not (raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 6):
        raise InvalidInput(
            [FieldError("limit", "type", "limit must be a whole number from 1 to 50")]
        )
    limit = max(1, min(50, int(raw_limit)))
    viewer = model_viewers(who)
    rows = await call(lambda: p.store.catalog.list_models(viewer, query=query, limit=limit))
    base = base_url(request)
    models = []
    for model in rows:
        latest = await call(p.store.catalog.latest_version, model.id)
        build = await call(latest_build, p, model.id)
        models.append(
            {
                "model": model_json(base, model, latest, build=build),
                "metadata": {"tags": [], "score": None, "generated_description": None},
            }
        )
    return JSONResponse({"query": query, "models": models, "collections": [], "pages": []})


routes = [
    Route("/v1/collections", list_collections, methods=["GET"]),
    Route("/v1/collections/{slug}", get_collection, methods=["GET"]),
    Route("/v1/search", search, methods=["GET"]),
]
