"""Training routes: create (on a trainer version, into a destination model), get, list,
cancel. A training is a prediction row of kind ``training`` whose job runs the
version's ``train:`` in a runner in train mode; on success the scheduler makes a
version of the destination (vendo.scheduler.training). Semantics follow
spec/replicate-api.md and spec/replicate-platform.md section 4."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vendo.api.responses import JSONResponse
from vendo.api.v1.builds import missing_version
from vendo.api.v1.context import (
    Caller,
    base_url,
    cached,
    call,
    caller,
    json_body,
    page,
    platform,
    visible_model,
)
from vendo.api.v1.policy import can_write, owns
from vendo.api.v1.predictions import cancel_run, new_prediction, owner_name
from vendo.api.v1.render import prediction_json
from vendo.errors import FieldError, Forbidden, InvalidInput, NotFound
from vendo.store import ModelRow, PredictionRow, VersionRow

__all__ = ["routes"]


def _destination_name(value: Any) -> tuple[str, str]:
    if not isinstance(value, str) or value.count("/") != 1 or value.startswith("/"):
        raise InvalidInput(
            [
                FieldError(
                    "destination",
                    "missing" if value is None else "format",
                    "destination is required: the model to push the trained version to, "
                    "as owner/name",
                )
            ]
        )
    owner, _, name = value.partition("/")
    if not name:
        raise InvalidInput([FieldError("destination", "format", "destination must be owner/name")])
    return owner, name


async def _destination(request: Request, who: Caller, value: Any) -> ModelRow:
    """The model a training pushes its version to: it must exist (404) and the caller
    must be allowed to write to it (403)."""
    owner, name = _destination_name(value)
    model = await visible_model(request, who, owner, name)
    if not can_write(who, model):
        raise Forbidden(f"you may not push versions to {owner}/{name}")
    return model


async def _trainer(request: Request, who: Caller) -> VersionRow:
    p = platform(request)
    owner, name = request.path_params["owner"], request.path_params["name"]
    version_id = request.path_params["id"]
    model = await visible_model(request, who, owner, name, fresh=False)
    version = await cached(p.store.cached.version, version_id)
    if version is None or version.model_id != model.id:
        raise await missing_version(request, who, version_id, model)
    if not (version.config or {}).get("train"):
        raise InvalidInput(
            [
                FieldError(
                    "version",
                    "trainable",
                    f"version {version_id} of {owner}/{name} cannot be trained: its "
                    "cog.yaml has no train:",
                )
            ]
        )
    return version


async def _one(request: Request, who: Caller, row: PredictionRow) -> Response:
    p = platform(request)
    owner = await owner_name(p, who, row)
    return JSONResponse(prediction_json(p, base_url(request), row, owner=owner))


async def create_training(request: Request) -> Response:
    """Create a training of a version, whose result becomes a version of ``destination``."""
    who = await caller(request)
    body = await json_body(request)
    version = await _trainer(request, who)
    model = await _destination(request, who, body.get("destination"))
    destination = f"{model.owner.username}/{model.name}"
    row = await new_prediction(request, who, version, body, destination=destination)
    p = platform(request)
    data = prediction_json(p, base_url(request), row, owner=who.account.username)
    if p.scheduler is not None:
        await p.scheduler.schedule(row, "train")
    else:
        await call(lambda: p.queue.submit(row, "train"))
    return JSONResponse(data, status_code=201, headers={"Location": data["urls"]["get"]})


async def _owned(request: Request, who: Caller) -> PredictionRow:
    training_id = request.path_params["id"]
    row = await call(platform(request).store.predictions.get, training_id)
    if row is None or row.kind != "training" or not owns(who, row.owner_id):
        raise NotFound(f"training {training_id} not found")
    return row


async def get_training(request: Request) -> Response:
    """Get a training."""
    who = await caller(request)
    return await _one(request, who, await _owned(request, who))


async def list_trainings(request: Request) -> Response:
    """List your trainings, newest first."""
    who = await caller(request)
    p = platform(request)
    cursor = request.query_params.get("cursor")
    rows = await call(
        lambda: p.store.predictions.page(who.account.id, cursor=cursor, kind="training")
    )
    base = base_url(request)
    results = [prediction_json(p, base, r, owner=who.account.username) for r in rows]
    return page(request, results, rows.next_cursor, rows.previous_cursor)


async def cancel_training(request: Request) -> Response:
    """Cancel a training."""
    who = await caller(request)
    p = platform(request)
    row = await _owned(request, who)
    return await _one(request, who, await cancel_run(p, row))


routes = [
    Route("/v1/models/{owner}/{name}/versions/{id}/trainings", create_training, methods=["POST"]),
    Route("/v1/trainings", list_trainings, methods=["GET"]),
    Route("/v1/trainings/{id}", get_training, methods=["GET"]),
    Route("/v1/trainings/{id}/cancel", cancel_training, methods=["POST"]),
]
