"""Vendo's own route for pushing a model: upload a package, build it, get a version.

``POST /v1/models/{owner}/{name}/versions`` takes the project as a (gzipped) tar in the
request body (what ``vendo push`` sends). The server extracts it safely
(:func:`vendo.packages.safe_extract`), checks its ``cog.yaml``, builds the environment
with :func:`vendo.envs.build_project`, extracts the schema there and records an
immutable version. The model is created when missing and the caller may own it (its
own name, or any name for the admin).

A version id is unique to its model: a hash of the model's ``owner/name`` and the
package's content digest (:func:`version_id_for`), 64 hex characters like Replicate's.
The same package pushed to the same model again answers the version it made; pushed to
another model it makes a version of that model.

A request that is refused (no access, bad name, too large, unsafe package, no or bad
``cog.yaml``) records nothing: the model is created only once the package is accepted.
An accepted push is recorded as a build of the model (:mod:`vendo.api.v1.builds`),
``building`` then ``succeeded`` or ``failed`` with the reason and the log. Errors name
no other owner's private model or version: a model the caller may not see answers the
same 404 whether it exists or not.

With ``Accept: application/x-ndjson`` the answer streams the build as it happens, one
JSON object per line: ``{"type": "step"|"log", "text": ...}`` then either
``{"type": "version", "version": {...}, "model": "o/n", "created": bool}`` or
``{"type": "error", "status": int, "title": str, "detail": str, "log_tail": str,
"build": {...}}`` (``build`` when the push was accepted and its build failed).
Otherwise the request blocks until the build ends and answers 201 with the version
(200 when that exact version existed already) or a problem+json error.

``GET /v1/models/{owner}/{name}/versions/{id}/build-log`` returns the build log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from vendo.api.responses import JSONResponse
from vendo.api.v1.builds import BUILDER
from vendo.api.v1.context import (
    Platform,
    base_url,
    call,
    caller,
    platform,
    visible_model,
)
from vendo.api.v1.policy import Caller, can_write, may_publish_under
from vendo.api.v1.render import build_json, version_json
from vendo.errors import (
    BuildError,
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    VendoError,
)
from vendo.files.fetch import write_capped
from vendo.packages import archive_bytes, content_hash, safe_extract
from vendo.store import ModelRow, UserRow, VersionRow
from vendo.store.catalog import version_id_for

__all__ = ["PushResult", "push_examples", "push_package", "routes", "version_id_for"]

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
LOG_KEPT = 200_000  # characters of a build log kept with a version or a failed build
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")
Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class PushResult:
    version: VersionRow
    model: ModelRow
    created: bool  # False: this exact content was pushed to this model before


def _cog_version() -> str:
    try:
        from importlib.metadata import version

        return f"vendo-{version('vendo')}"
    except Exception:
        return "vendo"


def _packages_dir(p: Platform) -> Path:
    return Path(p.settings.data_dir).resolve() / "packages"


def _check_name(owner: str, name: str) -> None:
    errors = []
    for field, value in (("owner", owner), ("name", name)):
        if not value or not set(value) <= _NAME_CHARS or value[0] in "._-":
            errors.append(
                FieldError(field, "pattern", f"{field} must be lowercase letters, digits, . _ -")
            )
    if errors:
        raise InvalidInput(errors)


def _target(p: Platform, who: Caller, owner: str, name: str) -> ModelRow | None:
    """The model to push to, or None when it is to be created; refuses a caller who
    may not push there. Creates nothing."""
    model = p.store.catalog.model(owner, name)
    if model is not None and can_write(who, model):
        return model
    if model is None and may_publish_under(who, p.store.accounts.user_named(owner), owner):
        return None
    if model is not None and model.visibility == "public":
        raise Forbidden(f"you do not have write access to {owner}/{name}")
    # Another owner's private model and a model that does not exist read the same:
    # the answer must not tell which.
    raise NotFound(
        f"model {owner}/{name} not found; you can push to models under your own name "
        f"({who.account.username}/...)"
    )


def _create_model(p: Platform, owner: str, name: str, visibility: str) -> ModelRow:
    """The model of an accepted push, created now (a concurrent push may have won)."""
    owner_row = p.store.accounts.user_named(owner)
    if owner_row is None:
        try:
            # The admin may publish under any name: the owner becomes an organization.
            owner_row = p.store.accounts.create_user(owner, type="organization")
        except Conflict:
            owner_row = p.store.accounts.user_named(owner)
            assert owner_row is not None
    try:
        return p.store.catalog.create_model(
            owner_row.id, name, visibility=visibility, hardware="cpu"
        )
    except Conflict:
        found = p.store.catalog.model(owner, name)
        assert found is not None
        return found


def _check_package(folder: Path) -> None:
    """Refuse, before anything is recorded, a package that cannot become a version."""
    from vendo.envs import load_config

    if not (folder / "cog.yaml").is_file():
        raise InvalidInput([FieldError("package", "missing", "the package has no cog.yaml")])
    config = load_config(folder)  # ConfigError (400) names the field
    if not config.predict:
        raise InvalidInput(
            [FieldError("predict", "missing", "cog.yaml has no 'predict' (or 'run')")]
        )


def _unpack(p: Platform, archive: Path) -> tuple[str, Path]:
    """Extract into a fresh folder, check it, hash it and move it to
    ``packages/<content digest>`` (shared by every model that has these files)."""
    root = _packages_dir(p)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))
    try:
        safe_extract(archive, staging, max_bytes=p.settings.max_package_bytes)
        _check_package(staging)
        digest = content_hash(staging)
        final = root / digest
        if final.exists():
            shutil.rmtree(staging)  # identical content is already here
        else:
            try:
                os.rename(staging, final)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
                if not final.exists():
                    raise
        return digest, final
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _config_record(config: Any) -> dict[str, Any]:
    return {
        "predict": config.predict,
        "train": config.train,
        "concurrency_max": config.concurrency_max,
        "environment": dict(config.environment),
        "python_version": config.build.python_version,
        "python_packages": list(config.build.python_packages),
        "gpu": bool(config.build.gpu),
    }


def push_package(
    p: Platform,
    who: Caller,
    owner: str,
    name: str,
    archive: Path,
    *,
    emit: Emit | None = None,
    visibility: str = "public",
    base: str | None = None,
) -> PushResult:
    """Blocking: unpack ``archive``, build it and record the version (see module doc).
    ``base`` is the server's root URL for the build's links in errors."""
    say: Emit = emit or (lambda event: None)
    _check_name(owner, name)
    model = _target(p, who, owner, name)
    say({"type": "step", "text": "Unpacking the package"})
    digest, package_dir = _unpack(p, archive)
    # in scaled mode the bucket keeps it, for the agents that run it elsewhere
    p.storage.save_package(digest, package_dir)
    # Accepted from here on: what follows is recorded, failures included.
    if model is None:
        model = _create_model(p, owner, name, visibility)
    existing = p.store.catalog.find_version(model.id, digest)
    if existing is not None:
        build = p.store.catalog.create_build(model.id, existing.id, builder=BUILDER)
        p.store.catalog.finish_build(build.id, "succeeded")
        say({"type": "step", "text": f"Version {existing.id} exists already"})
        return PushResult(existing, model, False)
    version_id = version_id_for(owner, name, digest)
    build = p.store.catalog.create_build(model.id, version_id, builder=BUILDER)
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        say({"type": "log", "text": line})

    try:
        say({"type": "step", "text": f"Version {version_id[:12]}: building the environment"})
        version, created = _build_version(p, model, version_id, digest, package_dir, log, say)
    except BaseException as exc:
        reason = exc.detail if isinstance(exc, VendoError) else f"internal error: {exc}"
        lines.append(f"build failed: {reason}")
        p.store.catalog.finish_build(build.id, "failed", error=reason, log=_tail(lines))
        if isinstance(exc, VendoError):
            failed = p.store.catalog.build(build.id) or build
            exc.extra["build"] = build_json(_base(p, base), model, failed)
        raise
    p.store.catalog.finish_build(build.id, "succeeded")
    say({"type": "step", "text": f"Pushed {owner}/{name}:{version.id}"})
    return PushResult(version, model, created)


def _tail(lines: list[str]) -> str:
    return "\n".join(lines)[-LOG_KEPT:] + "\n"


def _base(p: Platform, base: str | None) -> str:
    if base is not None:
        return base
    configured = p.settings.public_url
    return configured.rstrip("/") if configured else f"http://{p.settings.host}:{p.settings.port}"


def _build_version(
    p: Platform,
    model: ModelRow,
    version_id: str,
    digest: str,
    package_dir: Path,
    log: Callable[[str], None],
    say: Emit,
) -> tuple[VersionRow, bool]:
    """Build the environment and record the version; (version, created)."""
    from vendo.envs import build_project, environment_record

    result = build_project(
        package_dir,
        p.settings,
        on_log=log,
        on_step=lambda text: say({"type": "step", "text": text}),
    )
    build_log = ""
    with contextlib.suppress(OSError):
        build_log = Path(result.log_path).read_text(encoding="utf-8", errors="replace")
    try:
        version = p.store.catalog.create_version(
            model.id,
            version_id,
            openapi_schema=result.openapi,
            cog_version=_cog_version(),
            package_path=str(package_dir),
            environment=environment_record(result),
            config=_config_record(result.config),
            build_log=build_log[-LOG_KEPT:],
            digest=digest,
        )
        return version, True
    except Conflict:
        # the same package pushed to this model twice at once: the other push recorded it
        found = p.store.catalog.find_version(model.id, digest)
        if found is None:
            raise
        return found, False


async def _receive(request: Request, p: Platform) -> Path:
    """Stream the body into a temporary file, refusing more than the package limit."""
    limit = p.settings.max_package_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the package is larger than {limit} bytes")
    root = _packages_dir(p)
    await to_thread.run_sync(lambda: root.mkdir(parents=True, exist_ok=True))
    fd, name = tempfile.mkstemp(prefix=".upload-", suffix=".tar", dir=root)
    os.close(fd)  # only the unique name is wanted
    path = Path(name)
    too_large = f"the package is larger than {limit} bytes"
    size = await write_capped(request.stream(), path, limit, too_large)
    if size == 0:
        path.unlink(missing_ok=True)
        raise InvalidInput([FieldError("package", "missing", "the request body is empty")])
    return path


def _error_event(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, VendoError):
        event: dict[str, Any] = {"type": "error", **exc.to_problem()}
        if isinstance(exc, BuildError):
            event["log_tail"] = exc.log_tail
        return event
    log.exception("push failed", exc_info=exc)
    return {"type": "error", "status": 500, "title": "Internal Server Error", "detail": str(exc)}


async def push_version(request: Request) -> Response:
    """Push a model package (tar or tar.gz body) as a new version; builds it."""
    who = await caller(request)
    p = platform(request)
    owner, name = request.path_params["owner"], request.path_params["name"]
    visibility = request.query_params.get("visibility", "public")
    if visibility not in ("public", "private"):
        raise InvalidInput([FieldError("visibility", "enum", "public or private")])
    _check_name(owner, name)
    # refuse before reading a large body (and before recording anything)
    await call(_target, p, who, owner, name)
    archive = await _receive(request, p)
    base = base_url(request)

    def run(emit: Emit | None) -> PushResult:
        try:
            return push_package(
                p, who, owner, name, archive, emit=emit, visibility=visibility, base=base
            )
        finally:
            archive.unlink(missing_ok=True)

    if NDJSON not in request.headers.get("accept", ""):
        result = await to_thread.run_sync(run, None)
        status = 201 if result.created else 200
        return JSONResponse(version_json(result.version), status_code=status)

    return _streamed(run, f"{owner}/{name}")


def _streamed(run: Callable[[Emit | None], PushResult], model: str) -> StreamingResponse:
    """The push's progress as NDJSON lines, the new version last; the build runs in a
    thread and goes on if the client leaves."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def emit(event: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    async def build() -> None:
        try:
            result = await to_thread.run_sync(run, emit)
            await events.put(
                {
                    "type": "version",
                    "version": version_json(result.version),
                    "model": model,
                    "created": result.created,
                }
            )
        except Exception as exc:
            await events.put(_error_event(exc))
        finally:
            await events.put(None)

    task = asyncio.create_task(build())

    async def lines() -> AsyncIterator[bytes]:
        try:
            while True:
                event = await events.get()
                if event is None:
                    return
                yield (json.dumps(event) + "\n").encode("utf-8")
        finally:
            # a client that goes away does not stop the build: the version still lands
            if not task.done():
                log.info("push client left; the build of %s goes on", model)

    return StreamingResponse(lines(), media_type=NDJSON, status_code=200)


async def build_log(request: Request) -> Response:
    """A version's build log (text)."""
    who = await caller(request)
    owner, name = request.path_params["owner"], request.path_params["name"]
    model = await visible_model(request, who, owner, name)
    version = await call(platform(request).store.catalog.version, request.path_params["id"])
    if version is None or version.model_id != model.id:
        raise NotFound(f"version {request.path_params['id']} not found")
    if not can_write(who, model) and model.visibility != "public":
        raise NotFound(f"version {version.id} not found")
    return PlainTextResponse(version.build_log or "")


# --- vendo serve --examples ---------------------------------------------------------------


def examples_dir(configured: Path | None = None) -> Path | None:
    """``configured`` (VENDO_EXAMPLES_DIR), else ``examples/`` of a source checkout, else
    ./examples."""
    candidates = [Path(configured)] if configured else []
    candidates.append(Path(__file__).resolve().parents[4] / "examples")
    candidates.append(Path.cwd() / "examples")
    for folder in candidates:
        if folder.is_dir():
            return folder
    return None


def _push_example(p: Platform, admin: UserRow, folder: Path, out: Callable[[str], None]) -> None:
    name = folder.name.lower()
    fd, temp = tempfile.mkstemp(suffix=".tar.gz")
    os.close(fd)
    archive = Path(temp)
    try:
        archive.write_bytes(archive_bytes(folder))

        def progress(event: dict[str, Any]) -> None:
            if event["type"] == "step":
                out(f"  {name}: {event['text']}")

        result = push_package(p, Caller(admin), admin.username, name, archive, emit=progress)
        out(f"  {name}: ready as {admin.username}/{name}:{result.version.id[:12]}")
    finally:
        archive.unlink(missing_ok=True)


def _installs_packages(project: Path) -> bool:
    text = (project / "cog.yaml").read_text(encoding="utf-8")
    return any(key in text for key in ("python_requirements", "python_packages", "run:"))


async def push_examples(
    p: Platform,
    folder: Path | None = None,
    *,
    out: Callable[[str], None] | None = None,
    wait: bool = False,
) -> asyncio.Task[None] | None:
    """Push every model in ``examples/`` under the admin's name, in the background
    (the server answers meanwhile); progress goes to stderr. With ``wait`` it returns
    once all are pushed. A failing example is reported and skipped."""
    folder = folder or examples_dir(p.settings.examples_dir)
    write = out or (lambda line: print(line, file=sys.stderr, flush=True))
    if folder is None:
        write("examples: no examples/ folder found (set VENDO_EXAMPLES_DIR)")
        return None
    # Models with nothing to install come first, so hello-world answers within seconds
    # while the larger examples are still installing.
    projects = sorted(
        (d for d in folder.iterdir() if (d / "cog.yaml").is_file()),
        key=lambda d: (_installs_packages(d), d.name),
    )
    admin, _ = await to_thread.run_sync(lambda: p.store.accounts.ensure_admin(None))

    async def push_all() -> None:
        write(f"examples: pushing {len(projects)} models from {folder}")
        for project in projects:
            try:
                await to_thread.run_sync(_push_example, p, admin, project, write)
            except VendoError as exc:
                write(f"  {project.name}: failed: {exc.detail}")
            except Exception as exc:
                log.exception("example %s", project.name)
                write(f"  {project.name}: failed: {exc}")
        write("examples: done")

    task = asyncio.create_task(push_all(), name="vendo-push-examples")
    p.examples_task = task
    if wait:
        await task
        return None
    return task


routes = [
    Route("/v1/models/{owner}/{name}/versions", push_version, methods=["POST"]),
    Route("/v1/models/{owner}/{name}/versions/{id}/build-log", build_log, methods=["GET"]),
]
