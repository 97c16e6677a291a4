"""Deployment routes: create, list, get, update (a new release), delete, and create a
prediction on a deployment (docs/deployments.md)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vendo.api.responses import JSONResponse
from vendo.api.v1.context import (
    Caller,
    Platform,
    cached,
    call,
    caller,
    iso,
    json_body,
    page,
    platform,
    secret_box,
    visible_model,
)
from vendo.api.v1.inputs import unfit_input
from vendo.api.v1.policy import owns
from vendo.api.v1.predictions import create_prediction
from vendo.api.v1.render import account_json
from vendo.errors import Conflict, FieldError, InvalidInput, NotFound, SecretsKeyError
from vendo.queue.events import terminal_events
from vendo.store.deployments import Deployed, Refit
from vendo.store.sealing import is_sealed
from vendo.store.tables import PredictionRow, VersionRow

__all__ = ["routes"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,199}$")
# Most instances one deployment may ask for: a bound, not a promise (placement decides).
MAX_INSTANCES = 100
_SCALE = ("min_instances", "max_instances")


def deployment_json(found: Deployed) -> dict[str, Any]:
    release = found.release
    return {
        "owner": found.deployment.owner.username,
        "name": found.deployment.name,
        "current_release": {
            "number": release.number,
            "model": f"{release.model.owner.username}/{release.model.name}",
            "version": release.version_id,
            "created_at": iso(release.created_at),
            "created_by": account_json(release.created_by),
            "configuration": {
                "hardware": release.hardware,
                "min_instances": release.min_instances,
                "max_instances": release.max_instances,
            },
        },
    }


def _scale(body: dict[str, Any], errors: list[FieldError], *, required: bool) -> dict[str, int]:
    values: dict[str, int] = {}
    for name in _SCALE:
        if name not in body:
            if required:
                errors.append(FieldError(name, "missing", f"{name} is required"))
            continue
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(FieldError(name, "type", f"{name} must be an integer"))
        elif not 0 <= value <= MAX_INSTANCES:
            errors.append(
                FieldError(name, "range", f"{name} must be from 0 to {MAX_INSTANCES}, got {value}")
            )
        else:
            values[name] = value
    return values


def _hardware(p: Platform, body: dict[str, Any], errors: list[FieldError]) -> str | None:
    hardware = body.get("hardware")
    skus = p.hardware.offered_skus()
    if hardware not in skus:
        errors.append(FieldError("hardware", "enum", f"hardware must be one of {', '.join(skus)}"))
        return None
    assert isinstance(hardware, str)
    return hardware


async def _version_of(request: Request, model_id: int, ref: Any, model: str) -> VersionRow:
    """The version ``ref`` (its 64-hex id, or ``owner/name:id``) of the model."""
    if not isinstance(ref, str) or not ref:
        raise InvalidInput([FieldError("version", "missing", "version is required")])
    version_id = ref.rpartition(":")[2]
    version = await cached(platform(request).store.cached.version, version_id)
    if version is None or version.model_id != model_id:
        raise InvalidInput(
            [
                FieldError(
                    "version", "not_found", f"version {ref[:80]!r} is not a version of {model}"
                )
            ]
        )
    return version


async def _owned(request: Request, who: Caller, *, fresh: bool = True) -> Deployed:
    """The deployment of the path if the caller owns it, else 404. ``fresh=False``: from
    the read cache (cleared by every change of a deployment, see Deployments)."""
    owner, name = request.path_params["owner"], request.path_params["name"]
    store = platform(request).store
    if fresh:
        found = await call(store.deployments.get, owner, name)
    else:
        found = await cached(store.cached.deployment, owner, name)
    if found is None or not owns(who, found.deployment.owner_id):
        raise NotFound(f"deployment {owner}/{name} not found")
    return found


async def _changed(p: Platform, found: Deployed) -> None:
    if p.scheduler is not None:
        release = found.release
        disabled = release.max_instances == 0
        await p.scheduler.deployment_changed(found.pool, disabled=disabled)


def _refit(p: Platform, version: VersionRow) -> Refit:
    """Whether a queued prediction's input fits ``version`` (see Deployments.release)."""
    schema = version.openapi_schema or {}
    box = secret_box(p)

    def refit(row: PredictionRow) -> str | None:
        run = row.run_input or {}
        if is_sealed(run):
            try:
                run = box.open(run)
            except SecretsKeyError:
                run = {}  # it cannot run anywhere; its masked values are checked as such
        return unfit_input(row.input or {}, run, schema)

    return refit


async def create_deployment(request: Request) -> Response:
    """Create a deployment (release 1) under the caller's account."""
    who = await caller(request)
    p = platform(request)
    body = await json_body(request)
    errors: list[FieldError] = []
    name, model_ref = body.get("name"), body.get("model")
    if not isinstance(name, str) or not _NAME.match(name):
        errors.append(
            FieldError(
                "name", "pattern", "name is required: lowercase letters, digits, '-', '_' and '.'"
            )
        )
    if not isinstance(model_ref, str) or model_ref.count("/") != 1:
        errors.append(FieldError("model", "format", "model is required, as owner/name"))
    hardware = _hardware(p, body, errors)
    scale = _scale(body, errors, required=True)
    if len(scale) == 2 and scale["min_instances"] > scale["max_instances"]:
        errors.append(FieldError("min_instances", "range", "min_instances exceeds max_instances"))
    if errors:
        raise InvalidInput(errors)
    assert isinstance(model_ref, str) and isinstance(name, str)
    owner, _, model_name = model_ref.partition("/")
    model = await visible_model(request, who, owner, model_name)
    version = await _version_of(request, model.id, body.get("version"), model_ref)
    found = await call(
        lambda: p.store.deployments.create(
            who.account.id,
            name,
            created_by_id=who.user.id,
            model_id=model.id,
            version_id=version.id,
            hardware=hardware,
            **scale,
        )
    )
    await _changed(p, found)
    return JSONResponse(deployment_json(found), status_code=201)


async def list_deployments(request: Request) -> Response:
    """List your deployments."""
    who = await caller(request)
    p = platform(request)
    rows = await call(p.store.deployments.page, who.account.id, request.query_params.get("cursor"))
    return page(request, [deployment_json(d) for d in rows], rows.next_cursor, rows.previous_cursor)


async def get_deployment(request: Request) -> Response:
    """Get a deployment and its current release."""
    who = await caller(request)
    return JSONResponse(deployment_json(await _owned(request, who)))


async def update_deployment(request: Request) -> Response:
    """Change a deployment: every change is the next release."""
    who = await caller(request)
    p = platform(request)
    body = await json_body(request)
    found = await _owned(request, who)
    errors: list[FieldError] = []
    changes: dict[str, Any] = {}
    if "hardware" in body:
        changes["hardware"] = _hardware(p, body, errors)
    changes.update(_scale(body, errors, required=False))
    current = found.release
    low = changes.get("min_instances", current.min_instances)
    high = changes.get("max_instances", current.max_instances)
    if low > high:
        errors.append(FieldError("min_instances", "range", "min_instances exceeds max_instances"))
    if not errors and not changes and "version" not in body:
        errors.append(
            FieldError(
                "version",
                "missing",
                "nothing to change: give version, hardware, min_instances or max_instances",
            )
        )
    if errors:
        raise InvalidInput(errors)
    refit: Refit | None = None
    if "version" in body:
        model = current.model
        version = await _version_of(
            request, model.id, body["version"], f"{model.owner.username}/{model.name}"
        )
        changes["version_id"] = version.id
        refit = _refit(p, version)
    released = await call(
        lambda: p.store.deployments.release(
            found.deployment.id, who.user.id, refit=refit, **changes
        )
    )
    for row in released.refused:
        for name, data in terminal_events(row.status, row.error):
            p.bus.publish(row.id, name, data)
    await _changed(p, released.found)
    return JSONResponse(deployment_json(released.found))


async def delete_deployment(request: Request) -> Response:
    """Delete a deployment: only once scaled to zero (min = max = 0) and idle."""
    who = await caller(request)
    p = platform(request)
    found = await _owned(request, who)
    release = found.release
    if release.min_instances or release.max_instances:
        raise Conflict(
            "a deployment is deleted only once disabled: update it to min_instances 0 and "
            "max_instances 0 first"
        )
    if p.scheduler is not None and p.scheduler.instance_count(found.pool):
        raise Conflict("the deployment still has instances running; try again shortly")
    await call(p.store.deployments.delete, found.deployment.id, found.pool)
    return Response(status_code=204)


async def post_deployment_predictions(request: Request) -> Response:
    """Create a prediction on the deployment's current release."""
    who = await caller(request)
    body = await json_body(request)
    # cached: no database read here (caller() synced the cache with other processes)
    found = await _owned(request, who, fresh=False)
    release = found.release
    if release.max_instances == 0:
        raise Conflict(
            f"deployment {found.full_name} is disabled (max_instances is 0): update it to "
            "max_instances 1 or more to take predictions"
        )
    version = await cached(platform(request).store.cached.version, release.version_id)
    if version is None:
        raise NotFound(f"version {release.version_id} of deployment {found.full_name} not found")
    return await create_prediction(request, who, version, body, deployment=found.full_name)


routes = [
    Route("/v1/deployments", create_deployment, methods=["POST"]),
    Route("/v1/deployments", list_deployments, methods=["GET"]),
    Route("/v1/deployments/{owner}/{name}", get_deployment, methods=["GET"]),
    Route("/v1/deployments/{owner}/{name}", update_deployment, methods=["PATCH"]),
    Route("/v1/deployments/{owner}/{name}", delete_deployment, methods=["DELETE"]),
    Route(
        "/v1/deployments/{owner}/{name}/predictions",
        post_deployment_predictions,
        methods=["POST"],
    ),
]
