"""Model and version routes: create, get, list, search (QUERY), PATCH, DELETE, readme,
examples, versions."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from vendo.api.body import parse_json, read_body
from vendo.api.responses import JSONResponse
from vendo.api.v1.builds import latest_build, missing_version
from vendo.api.v1.context import (
    Caller,
    base_url,
    call,
    caller,
    json_body,
    page,
    platform,
    visible_model,
)
from vendo.api.v1.policy import can_delete, can_write, may_publish_under, model_viewers
from vendo.api.v1.render import model_json, prediction_json, version_json
from vendo.errors import FieldError, Forbidden, InvalidInput, NotFound, RequestError
from vendo.store import ModelRow

__all__ = ["routes"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,199}$")
_URL_FIELDS = ("github_url", "paper_url", "license_url", "weights_url", "cover_image_url")
_PATCHABLE = ("description", "readme", *_URL_FIELDS)


async def _model_body(request: Request, model: ModelRow) -> dict[str, Any]:
    p = platform(request)
    latest = await call(p.store.catalog.latest_version, model.id)
    build = await call(latest_build, p, model.id)
    example = None
    if model.default_example_id:
        row = await call(p.store.predictions.get, model.default_example_id)
        if row is not None:
            example = prediction_json(p, base_url(request), row, owner=model.owner.username)
    return model_json(base_url(request), model, latest, example, build)


def _text_fields(body: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    errors = []
    for name in names:
        if name not in body:
            continue
        value = body[name]
        if value is not None and not isinstance(value, str):
            errors.append(FieldError(name, "type", f"{name} must be a string or null"))
        elif name in _URL_FIELDS and value and not value.startswith(("http://", "https://")):
            errors.append(FieldError(name, "url", f"{name} must be an http(s) URL"))
        else:
            values[name] = value
    if errors:
        raise InvalidInput(errors)
    return values


async def create_model(request: Request) -> Response:
    """Create a model."""
    who = await caller(request)
    p = platform(request)
    body = await json_body(request)
    errors: list[FieldError] = []
    owner, name = body.get("owner"), body.get("name")
    visibility, hardware = body.get("visibility"), body.get("hardware")
    if not isinstance(owner, str) or not owner:
        errors.append(FieldError("owner", "missing", "owner is required"))
    if not isinstance(name, str) or not _NAME.match(name):
        errors.append(
            FieldError(
                "name",
                "pattern",
                "name is required: lowercase letters, digits, '-', '_' and '.'",
            )
        )
    if visibility not in ("public", "private"):
        errors.append(FieldError("visibility", "enum", "visibility must be public or private"))
    skus = p.hardware.offered_skus()
    if hardware not in skus:
        errors.append(FieldError("hardware", "enum", f"hardware must be one of {', '.join(skus)}"))
    fields: dict[str, Any] = {}
    try:
        fields = _text_fields(body, _PATCHABLE)
    except InvalidInput as exc:
        errors.extend(exc.errors)
    if errors:
        raise InvalidInput(errors)
    assert isinstance(owner, str) and isinstance(name, str)
    owner_row = await call(p.store.accounts.user_named, owner)
    if not may_publish_under(who, owner_row, owner):
        raise Forbidden(f"you cannot create models under {owner!r}")
    if owner_row is None:
        # The admin may publish under any name: the owner becomes an organization.
        owner_row = await call(lambda: p.store.accounts.create_user(owner, type="organization"))
    model = await call(
        lambda: p.store.catalog.create_model(
            owner_row.id, name, visibility=visibility, hardware=hardware, **fields
        )
    )
    return JSONResponse(await _model_body(request, model), status_code=201)


async def list_models(request: Request) -> Response:
    """List models."""
    who = await caller(request)
    params = request.query_params
    sort_by = params.get("sort_by", "model_created_at")
    direction = params.get("sort_direction", "desc")
    errors = []
    if sort_by not in ("model_created_at", "latest_version_created_at"):
        errors.append(
            FieldError(
                "sort_by", "enum", "sort_by must be model_created_at or latest_version_created_at"
            )
        )
    if direction not in ("asc", "desc"):
        errors.append(FieldError("sort_direction", "enum", "sort_direction must be asc or desc"))
    if errors:
        raise InvalidInput(errors)
    return await _list(request, who, sort_by=sort_by, direction=direction)


async def search_models(request: Request) -> Response:
    """Search models (the body is the query text)."""
    who = await caller(request)
    settings = platform(request).settings
    raw = (await read_body(request, settings.max_request_bytes)).decode("utf-8", "replace")
    raw = raw.strip()
    query = raw
    if raw.startswith('"'):
        # The JS client sends JSON.stringify(query): unwrap a JSON string.
        try:
            decoded = parse_json(raw.encode("utf-8", "replace"), max_depth=1)
        except RequestError:
            decoded = None
        if isinstance(decoded, str):
            query = decoded
    if not query:
        raise InvalidInput([FieldError("query", "missing", "send the search text as the body")])
    if "\x00" in query:  # PostgreSQL cannot compare text holding one
        raise InvalidInput([FieldError("query", "unicode", "the search text holds a NUL")])
    return await _list(request, who, query=query)


async def _list(request: Request, who: Caller, **kwargs: Any) -> Response:
    p = platform(request)
    viewer = model_viewers(who)
    rows = await call(
        lambda: p.store.catalog.list_models(
            viewer, cursor=request.query_params.get("cursor"), **kwargs
        )
    )
    results = [await _model_body(request, m) for m in rows]
    return page(request, results, rows.next_cursor, rows.previous_cursor)


async def get_model(request: Request) -> Response:
    """Get a model."""
    who = await caller(request)
    model = await visible_model(request, who, **request.path_params)
    return JSONResponse(await _model_body(request, model))


async def _writable(request: Request) -> ModelRow:
    return (await _writable_by(request))[1]


async def _writable_by(request: Request) -> tuple[Caller, ModelRow]:
    who = await caller(request)
    owner, name = request.path_params["owner"], request.path_params["name"]
    model = await visible_model(request, who, owner, name)
    if not can_write(who, model):
        raise Forbidden(f"you do not have write access to {owner}/{name}")
    return who, model


async def patch_model(request: Request) -> Response:
    """Update a model's description, readme or links."""
    model = await _writable(request)
    body = await json_body(request)
    fields = _text_fields(body, _PATCHABLE)
    unknown = sorted(set(body) - set(_PATCHABLE))
    if unknown:
        raise InvalidInput(
            [
                FieldError(
                    k, "unknown", f"{k} cannot be changed; PATCH takes {', '.join(_PATCHABLE)}"
                )
                for k in unknown
            ]
        )
    updated = await call(lambda: platform(request).store.catalog.update_model(model.id, **fields))
    return JSONResponse(await _model_body(request, updated))


async def delete_model(request: Request) -> Response:
    """Delete a private model without versions."""
    who, model = await _writable_by(request)
    if not can_delete(who, model):
        owner = model.owner.username
        raise Forbidden(f"only an owner of {owner} may delete {owner}/{model.name}")
    await call(platform(request).store.catalog.delete_model, model.id)
    return Response(status_code=204)


async def get_readme(request: Request) -> Response:
    """Get a model's README (Markdown)."""
    who = await caller(request)
    model = await visible_model(request, who, **request.path_params)
    return PlainTextResponse(model.readme or "", media_type="text/markdown")


async def list_examples(request: Request) -> Response:
    """List a model's example predictions."""
    who = await caller(request)
    p = platform(request)
    model = await visible_model(request, who, **request.path_params)
    results = []
    if model.default_example_id:
        row = await call(p.store.predictions.get, model.default_example_id)
        if row is not None:
            results.append(prediction_json(p, base_url(request), row, owner=model.owner.username))
    return page(request, results, None, None)


async def list_versions(request: Request) -> Response:
    """List a model's versions."""
    who = await caller(request)
    model = await visible_model(request, who, **request.path_params)
    versions = await call(platform(request).store.catalog.versions, model.id)
    return page(request, [version_json(v) for v in versions], None, None)


async def _version(request: Request, model: ModelRow) -> Any:
    version_id = request.path_params["id"]
    version = await call(platform(request).store.catalog.version, version_id)
    if version is None or version.model_id != model.id:
        raise NotFound(f"version {version_id} not found")
    return version


async def get_version(request: Request) -> Response:
    """Get a model version."""
    who = await caller(request)
    owner, name = request.path_params["owner"], request.path_params["name"]
    model = await visible_model(request, who, owner, name)
    version_id = request.path_params["id"]
    version = await call(platform(request).store.catalog.version, version_id)
    if version is None or version.model_id != model.id:
        # a version still building or whose build failed is not there yet: a 404 that
        # says so (GET of a missing resource stays a 404 for the clients)
        problem = await missing_version(request, who, version_id, model)
        missing = NotFound(problem.detail)
        missing.extra.update(problem.extra)
        raise missing
    return JSONResponse(version_json(version))


async def delete_version(request: Request) -> Response:
    """Delete a model version."""
    model = await _writable(request)
    version = await _version(request, model)
    await call(platform(request).store.catalog.delete_version, version.id)
    # 204, not the documented 202: replicate 1.0.7 treats anything else as a failure.
    return Response(status_code=204)


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models", create_model, methods=["POST"]),
    Route("/v1/models", search_models, methods=["QUERY"]),
    Route("/v1/models/{owner}/{name}", get_model, methods=["GET"]),
    Route("/v1/models/{owner}/{name}", patch_model, methods=["PATCH"]),
    Route("/v1/models/{owner}/{name}", delete_model, methods=["DELETE"]),
    Route("/v1/models/{owner}/{name}/readme", get_readme, methods=["GET"]),
    Route("/v1/models/{owner}/{name}/examples", list_examples, methods=["GET"]),
    Route("/v1/models/{owner}/{name}/versions", list_versions, methods=["GET"]),
    Route("/v1/models/{owner}/{name}/versions/{id}", get_version, methods=["GET"]),
    Route("/v1/models/{owner}/{name}/versions/{id}", delete_version, methods=["DELETE"]),
]
