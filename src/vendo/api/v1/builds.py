"""A model's builds: what became of its accepted pushes, and why a model without a ready
version cannot run (a Vendo addition to Replicate's API).

Each accepted push is recorded as a build (``building``, then ``failed`` or
``succeeded``); the model object shows the newest as ``latest_build``. A prediction on a
model that has no version yet is refused with a problem that says why: its first build
is still running (409, retry once it ends), it failed (409, with the reason and the
build log's URL), or nothing was ever pushed (404).

``GET /v1/models/{owner}/{name}/builds/{id}`` is a build; ``.../builds/{id}/log`` its log.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from vendo.api.responses import JSONResponse
from vendo.api.v1.context import (
    Caller,
    Platform,
    base_url,
    call,
    caller,
    iso,
    platform,
    visible_model,
)
from vendo.api.v1.policy import can_see
from vendo.api.v1.render import build_json
from vendo.errors import Conflict, NotFound, VendoError
from vendo.store import BuildRow, ModelRow, utcnow

__all__ = [
    "BUILDER",
    "INTERRUPTED",
    "current_build",
    "latest_build",
    "missing_version",
    "no_ready_version",
    "not_ready",
    "routes",
]

# Who builds: a build row names its process, so that one left ``building`` by a process
# that is gone (kill -9, power loss) can be told from one still running. The random
# part tells a restarted server from its predecessor when both got the same pid (PID 1
# in a container).
BUILDER = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
INTERRUPTED = "interrupted: the server stopped during this build; push again"


def _process_gone(builder: str) -> bool:
    """Whether ``host:pid:nonce`` names a process of this host that no longer exists.
    Builds of other hosts are never judged from here."""
    host, pid, _ = (builder.rsplit(":", 2) + ["", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit() or builder == BUILDER:
        return False
    if int(pid) == os.getpid():
        return True  # this pid, another process: the one before a restart
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def current_build(p: Platform, build: BuildRow | None) -> BuildRow | None:
    """``build`` as it stands: one whose builder process is gone is marked failed
    (interrupted) on the way. Blocking."""
    if build is None or build.status != "building" or not _process_gone(build.builder):
        return build
    p.store.catalog.finish_build(build.id, "failed", error=INTERRUPTED)
    return p.store.catalog.build(build.id) or build


def latest_build(p: Platform, model_id: int) -> BuildRow | None:
    """The model's newest accepted push, as it stands. Blocking."""
    return current_build(p, p.store.catalog.latest_build(model_id))


def _ago(at: datetime) -> str:
    seconds = max(0, int((utcnow() - at).total_seconds()))
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"


def not_ready(
    base: str, model: ModelRow, build: BuildRow | None, version_id: str | None = None
) -> VendoError:
    """Why ``model`` (or its version ``version_id``) cannot run: the error to raise."""
    ref = f"{model.owner.username}/{model.name}"
    what = f"version {version_id} of {ref}" if version_id else ref
    if build is None:
        if version_id:
            return NotFound(f"version {version_id} of {ref} not found")
        return NotFound(f"model {ref} has no versions yet: push one with vendo push")
    info = build_json(base, model, build)
    error: VendoError
    if build.status == "building":
        # 409, not 425 Too Early: 425 is about replayed TLS early data (RFC 8470); the
        # model's state is what conflicts with the request, and retrying later succeeds.
        error = Conflict(
            f"{what} is still building (pushed {_ago(build.created_at)} ago): retry once "
            f"the build has finished; GET /v1/models/{ref} shows latest_build.status"
        )
    elif build.status == "failed":
        error = Conflict(
            f"{what} has no version that runs: its latest push failed to build: "
            f"{build.error or 'unknown error'} (build log: {info['urls']['log']}); fix it "
            "and push again"
        )
    else:  # succeeded, yet the version is gone (deleted)
        return NotFound(
            f"version {version_id} of {ref} not found"
            if version_id
            else f"model {ref} has no versions: its versions were deleted; push one"
        )
    error.extra["build"] = info
    return error


async def no_ready_version(request: Request, model: ModelRow) -> VendoError:
    """The error for a prediction on ``model``, which has no version (yet)."""
    build = await call(latest_build, platform(request), model.id)
    return not_ready(base_url(request), model, build)


async def missing_version(
    request: Request, who: Caller, version_id: str, model: ModelRow | None = None
) -> VendoError:
    """The error for a version id that names no version (of ``model``, when given): a
    404, or, when a visible model's push makes that version, what became of it."""
    p = platform(request)
    build = await call(p.store.catalog.build_of_version, version_id)
    if build is not None and (model is None or build.model_id == model.id):
        owner = model or await call(p.store.catalog.model_by_id, build.model_id)
        if owner is not None and can_see(who, owner):
            build = await call(current_build, p, build)
            return not_ready(base_url(request), owner, build, version_id)
    if model is not None:
        return NotFound(f"version {version_id} of {model.owner.username}/{model.name} not found")
    return NotFound(f"version {version_id} not found")


async def _build(request: Request) -> tuple[ModelRow, BuildRow]:
    who = await caller(request)
    p = platform(request)
    owner, name = request.path_params["owner"], request.path_params["name"]
    model = await visible_model(request, who, owner, name)
    found = await call(p.store.catalog.build, request.path_params["id"])
    if found is None or found.model_id != model.id:
        raise NotFound(f"build {request.path_params['id']} of {owner}/{name} not found")
    build = await call(current_build, p, found)
    assert build is not None
    return model, build


async def get_build(request: Request) -> Response:
    """A model's build (one accepted push): status, version id, error."""
    model, build = await _build(request)
    return JSONResponse(build_json(base_url(request), model, build))


async def get_build_log(request: Request) -> Response:
    """A build's log (text): the failed build's own, else its version's."""
    model, build = await _build(request)
    text = build.log
    if build.status == "succeeded" and not text:
        version = await call(platform(request).store.catalog.version, build.version_id)
        text = version.build_log if version is not None else ""
    elif build.status == "building" and not text:
        text = f"building since {iso(build.created_at)}; vendo push shows the log as it runs\n"
    return PlainTextResponse(text or "")


routes = [
    Route("/v1/models/{owner}/{name}/builds/{id}", get_build, methods=["GET"]),
    Route("/v1/models/{owner}/{name}/builds/{id}/log", get_build_log, methods=["GET"]),
]
