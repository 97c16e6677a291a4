"""Cog's HTTP API for one model: what ``vendo serve-model`` serves.

Routes and behaviour follow spec/cog.md sections 8 and 9, taking the better behaviour
wherever Cog's server is weaker (each such place is marked [dev] in the spec): a slot
is free before a sync response is written (no spurious 409), finished results are kept
for idempotent PUT, ``Prefer`` is parsed as RFC 7240 tokens, a crashed child is
restarted, failed uploads fail the prediction.

``create_app(options)`` builds the app; nothing happens at import time and nothing
starts before the app's lifespan does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from vendo import __version__
from vendo.api.cog_outputs import OutputFiles
from vendo.api.cog_predictions import (
    FetchLimits,
    PredictionRecord,
    PredictionService,
    new_prediction_id,
)
from vendo.api.cog_requests import (
    Rejected,
    check_context,
    check_webhook,
    prediction_id,
    read_payload,
)
from vendo.api.routing import by_path
from vendo.config import Settings
from vendo.files.addresses import refusal
from vendo.files.fetch import guarded_transport
from vendo.scheduler.process import RunnerProcess, RunnerSpec, RunnerState
from vendo.schema import InputValidationError
from vendo.webhooks.outbox import WebhookURLError
from vendo.webhooks.sender import RetryPolicy, WebhookSender

if TYPE_CHECKING:
    from vendo.envs import BuildResult, CogConfig

__all__ = ["CogServerOptions", "create_app", "prefers_async"]

# The Cog release whose HTTP API this follows (reported as ``cog_version`` in GET /).
COG_API_VERSION = "0.23.1"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass
class CogServerOptions:
    """Everything ``create_app`` needs; :meth:`from_project` fills it from cog.yaml."""

    project: Path
    predict_ref: str | None
    train_ref: str | None = None
    python: str = sys.executable
    runtime_path: Path | None = None
    max_concurrency: int | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    upload_url: str | None = None
    cancel_grace: float = 10.0
    max_restarts: int = 3
    restart_backoff: float = 0.5
    stream_capacity: int = 1024
    throttle_interval: float = 0.5
    keepalive: float = 15.0
    webhook_auth_token: str | None = None
    webhook_retry: RetryPolicy = field(default_factory=RetryPolicy)
    webhook_timeout: float = 10.0
    retention: float = 600.0
    work_dir: Path | None = None
    fetch_limits: FetchLimits = field(default_factory=FetchLimits)
    on_shutdown: Callable[[], None] | None = None
    # Move everything loaded at start-up out of the collector's sight: shorter GC pauses
    # on the request path. Process-wide, so only the serve-model command turns it on.
    freeze_gc: bool = False

    @classmethod
    def from_project(
        cls, project: Path, *, config: CogConfig | None = None, **overrides: Any
    ) -> CogServerOptions:
        """Options for the model in ``project``: cog.yaml (read unless ``config`` is
        given), then COG_* variables, then ``overrides``. The child runs on ``python``
        (default: this interpreter); :meth:`from_build` runs it in a built environment."""
        from vendo.envs.config import load_config

        if config is None:
            config = load_config(project)
        env = os.environ
        values: dict[str, Any] = {
            "project": config.project_dir,
            "predict_ref": config.predict,
            "train_ref": config.train,
            # None when cog.yaml has no concurrency.max: the decorator then has its say
            "max_concurrency": config.concurrency_max,
            "environment": dict(config.environment),
            "webhook_auth_token": env.get("WEBHOOK_AUTH_TOKEN") or None,
        }
        if env.get("COG_STREAM_HISTORY_CAPACITY"):
            values["stream_capacity"] = int(env["COG_STREAM_HISTORY_CAPACITY"])
        if env.get("COG_THROTTLE_RESPONSE_INTERVAL"):
            values["throttle_interval"] = float(env["COG_THROTTLE_RESPONSE_INTERVAL"])
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_build(cls, result: BuildResult, **overrides: Any) -> CogServerOptions:
        """Options that run the model inside the environment ``build_project`` made."""
        from vendo.envs import child_environment

        values: dict[str, Any] = {
            "python": str(result.python),
            "runtime_path": result.runtime_path,
            # the env's variables, its bin first on PATH, and cog.yaml's environment
            "environment": child_environment(result),
            **overrides,
        }
        return cls.from_project(result.project_dir, config=result.config, **values)


def prefers_async(header: str | None) -> bool:
    """Whether a ``Prefer`` header (RFC 7240) holds the ``respond-async`` preference."""
    if not header:
        return False
    for preference in header.split(","):
        token = preference.split(";", 1)[0].split("=", 1)[0].strip().lower()
        if token == "respond-async":
            return True
    return False


def _json(data: Any, status: int = 200) -> Response:
    return Response(_dumps(data), status, media_type="application/json")


def _failure(message: str, status: int) -> Response:
    return _json({"error": message, "status": "failed"}, status)


_MAX_JSON_DEPTH: int = Settings.model_fields["max_json_depth"].default


def _detail(loc: list[str], msg: str, status: int = 422) -> Response:
    return _json({"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]}, status)


_NOT_FOUND = Response(b"{}", 404, media_type="application/json")
_EMPTY = b"{}"


class CogServer:
    """The app's state and its route handlers."""

    def __init__(self, options: CogServerOptions) -> None:
        self.options = options
        self.services: dict[str, PredictionService] = {}
        self.runners: list[RunnerProcess] = []
        self._work_dir: Path | None = None
        self._own_work_dir = False
        self._http: httpx.AsyncClient | None = None
        self._webhooks: WebhookSender | None = None
        self._webhook_http: httpx.AsyncClient | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def _runner(self, ref: str, mode: str) -> RunnerProcess:
        o = self.options
        spec = RunnerSpec(
            project=o.project,
            ref=ref,
            python=o.python,
            runtime_path=o.runtime_path,
            mode=mode,
            max_concurrency=o.max_concurrency,
            env=o.environment,
        )
        return RunnerProcess(
            spec,
            cancel_grace=o.cancel_grace,
            max_restarts=o.max_restarts,
            restart_backoff=o.restart_backoff,
        )

    async def startup(self) -> None:
        o = self.options
        if o.work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="vendo-serve-"))
            self._own_work_dir = True
        else:
            self._work_dir = o.work_dir
        self._http = httpx.AsyncClient(timeout=300.0, follow_redirects=False, trust_env=False)
        allow_private = o.fetch_limits.allow_private

        def check(address: str) -> None:
            why = refusal(address, allow_private=allow_private)
            if why is not None:
                raise WebhookURLError(f"webhooks may not target {why}")

        # Webhooks follow the address policy of input downloads (docs/api.md), checked
        # where the connection is made.
        self._webhook_http = httpx.AsyncClient(
            timeout=o.webhook_timeout,
            follow_redirects=False,
            trust_env=False,
            transport=guarded_transport(check),
        )
        self._webhooks = WebhookSender(
            user_agent=f"vendo/{__version__}",
            auth_token=o.webhook_auth_token,
            timeout=o.webhook_timeout,
            retry=o.webhook_retry,
            client=self._webhook_http,
        )
        outputs = OutputFiles(o.upload_url, self._http)
        for kind, ref, mode in (
            ("predictions", o.predict_ref, "predict"),
            ("trainings", o.train_ref, "train"),
        ):
            if ref is None:
                continue
            runner = self._runner(ref, mode)
            self.runners.append(runner)
            self.services[kind] = PredictionService(
                runner,
                kind=kind,
                work_dir=self._work_dir / kind,
                outputs=outputs,
                webhooks=self._webhooks,
                http=self._http,
                fetch_limits=o.fetch_limits,
                stream_capacity=o.stream_capacity,
                throttle_interval=o.throttle_interval,
                retention=o.retention,
            )
        for runner in self.runners:
            await runner.start()
        if o.freeze_gc:
            gc.collect()
            gc.freeze()

    async def shutdown(self) -> None:
        await asyncio.gather(*(r.close() for r in self.runners), return_exceptions=True)
        await asyncio.gather(*(s.aclose() for s in self.services.values()))
        if self._webhooks is not None:
            await self._webhooks.aclose()
        if self._webhook_http is not None:
            await self._webhook_http.aclose()
        if self._http is not None:
            await self._http.aclose()
        if self._own_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    @property
    def main_runner(self) -> RunnerProcess | None:
        service = self.services.get("predictions") or self.services.get("trainings")
        return service.runner if service is not None else None

    # --- informational routes ------------------------------------------------------------

    async def root(self, request: Request) -> Response:
        body: dict[str, Any] = {
            "cog_version": COG_API_VERSION,
            "vendo_version": __version__,
            "docs_url": "/docs",
            "openapi_url": "/openapi.json",
            "shutdown_url": "/shutdown",
            "healthcheck_url": "/health-check",
        }
        for noun, singular in (("predictions", "prediction"), ("trainings", "training")):
            if noun in self.services:
                body[f"{noun}_url"] = f"/{noun}"
                body[f"{noun}_idempotent_url"] = f"/{noun}/{{{singular}_id}}"
                body[f"{noun}_cancel_url"] = f"/{noun}/{{{singular}_id}}/cancel"
        return _json(body)

    def _health_runner(self) -> RunnerProcess | None:
        """The runner whose state health reports: the first one not yet ready (a failed
        one first), else the main one. With ``train:`` set there are two children, and
        READY must mean both are set up, or a training sent right after READY would find
        the trainer still starting."""
        by_concern = {RunnerState.SETUP_FAILED: 0, RunnerState.DEFUNCT: 1, RunnerState.STARTING: 2}
        pending = [r for r in self.runners if r.state in by_concern]
        if pending:
            return min(pending, key=lambda r: by_concern[r.state])
        return self.main_runner

    async def health(self, request: Request) -> Response:
        runner = self._health_runner()
        if runner is None:
            return _json({"status": RunnerState.SETUP_FAILED.value})
        state = runner.state
        body: dict[str, Any] = {
            "status": state.value,
            "setup": runner.setup.as_dict(),
            "version": {
                "vendo": __version__,
                "cog": COG_API_VERSION,
                "python": platform.python_version(),
            },
        }
        if state in (RunnerState.READY, RunnerState.BUSY) and runner.has_healthcheck:
            ok, error = await runner.healthcheck()
            if not ok:
                body["status"] = RunnerState.UNHEALTHY.value
                body["user_healthcheck_error"] = error
        return _json(body)

    def openapi_document(self) -> dict[str, Any] | None:
        documents = [r.openapi for r in self.runners if r.openapi]
        if not documents:
            return None
        merged = json.loads(json.dumps(documents[0]))
        for extra in documents[1:]:
            for path, item in extra.get("paths", {}).items():
                merged.setdefault("paths", {}).setdefault(path, item)
            schemas = merged.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in extra.get("components", {}).get("schemas", {}).items():
                schemas.setdefault(name, schema)
        return merged

    async def openapi(self, request: Request) -> Response:
        document = self.openapi_document()
        if document is None:
            return _failure("the OpenAPI schema is not available yet (setup has not finished)", 503)
        return _json(document)

    async def docs(self, request: Request) -> Response:
        return HTMLResponse(
            "<!doctype html><title>Vendo model API</title>"
            "<p>This model serves Cog's HTTP API. The schema is at "
            '<a href="/openapi.json">/openapi.json</a>.</p>'
        )

    async def shutdown_route(self, request: Request) -> Response:
        if self.options.on_shutdown is not None:
            asyncio.get_running_loop().call_soon(self.options.on_shutdown)
        return Response(_EMPTY, 200, media_type="application/json")

    # --- predictions and trainings -------------------------------------------------------

    def _service(self, request: Request) -> PredictionService | None:
        return self.services.get(request.url.path.split("/", 2)[1])

    async def create(self, request: Request) -> Response:
        service = self._service(request)
        if service is None:
            return _NOT_FOUND
        return await self._create(request, service, request.path_params.get("prediction_id"))

    async def _create(
        self, request: Request, service: PredictionService, path_id: str | None
    ) -> Response:
        headers = request.headers
        wants_sse = "text/event-stream" in headers.get("accept", "")
        respond_async = prefers_async(headers.get("prefer"))
        runner = service.runner
        try:
            payload = read_payload(await request.body(), _MAX_JSON_DEPTH)
            pid = prediction_id(payload, path_id)
            if path_id is not None:
                existing = service.get(path_id)
                if existing is not None:
                    return await self._existing(
                        request, service, existing, wants_sse, respond_async
                    )
            elif pid is not None:
                existing = service.get(pid)
                if existing is not None and not existing.done:
                    return _failure(f"prediction {pid} is already running", 409)
            if wants_sse and not service.streaming:
                return _failure("this model does not stream: it has no @streaming run", 406)
            if not runner.accepting:
                return _failure(f"the model is not ready (state {runner.state.value})", 503)
            try:
                validated, masked = service.validate(payload.get("input"))
            except InputValidationError as exc:
                return _json({"detail": exc.errors}, 422)
            context = check_context(payload)
            allow_private = self.options.fetch_limits.allow_private
            webhook, events = check_webhook(payload, allow_private=allow_private)
        except Rejected as exc:
            return _detail(exc.loc, exc.msg, exc.status)
        slot = runner.acquire_slot()
        if slot is None:
            return _failure("Already running a prediction", 409)
        # Cog passes the caller's trace context on to the prediction's webhooks.
        webhook_headers = {}
        if "traceparent" in headers:
            webhook_headers["traceparent"] = headers["traceparent"]
        record = service.start(
            slot,
            pid or new_prediction_id(),
            validated,
            masked,
            context=context,
            webhook=webhook,
            webhook_events=events,
            webhook_headers=webhook_headers,
            stream=wants_sse,
        )
        if wants_sse:
            return self._sse(service, record, owner=True)
        if respond_async:
            return Response(record.to_json(), 202, media_type="application/json")
        record.cancel_on_disconnect = True
        return await self._wait(request, service, record)

    async def _existing(
        self,
        request: Request,
        service: PredictionService,
        record: PredictionRecord,
        wants_sse: bool,
        respond_async: bool,
    ) -> Response:
        if wants_sse:
            if record.stream is None:
                return _failure("this prediction has no event stream", 406)
            return self._sse(service, record, owner=False)
        if record.done:
            return Response(record.to_json(), 200, media_type="application/json")
        if respond_async:
            return Response(record.to_json(), 202, media_type="application/json")
        return await self._wait(request, service, record)

    async def _wait(
        self, request: Request, service: PredictionService, record: PredictionRecord
    ) -> Response:
        """Wait for the result; a client that hangs up cancels a sync prediction."""
        finished = record.finished
        while not finished.done():
            # The body was read in full, so the next ASGI message is the disconnect.
            listener = asyncio.ensure_future(request.receive())
            try:
                await asyncio.wait((finished, listener), return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not listener.done():
                    listener.cancel()
            if finished.done():
                break
            try:
                hung_up = listener.result()["type"] == "http.disconnect"
            except Exception:
                hung_up = True
            if hung_up:
                if record.cancel_on_disconnect:
                    service.cancel(record.id)
                return Response(b"", 499)
        return Response(record.to_json(), 200, media_type="application/json")

    def _sse(
        self, service: PredictionService, record: PredictionRecord, *, owner: bool
    ) -> Response:
        stream = record.stream
        assert stream is not None
        keepalive = self.options.keepalive

        async def events() -> AsyncIterator[bytes]:
            try:
                async for chunk in stream.subscribe(0, keepalive):
                    yield chunk
            finally:
                if owner and stream.subscribers == 0 and not record.done:
                    service.cancel(record.id)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def get(self, request: Request) -> Response:
        service = self._service(request)
        record = service.get(request.path_params["prediction_id"]) if service else None
        if record is None:
            return _NOT_FOUND
        return Response(record.to_json(), 200, media_type="application/json")

    async def cancel(self, request: Request) -> Response:
        service = self._service(request)
        if service is None or not service.cancel(request.path_params["prediction_id"]):
            return _NOT_FOUND
        return Response(_EMPTY, 200, media_type="application/json")


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and wrong methods answer as Cog's server does: JSON
    ``{"detail": ...}`` (405 keeps its ``Allow`` header)."""
    assert isinstance(exc, HTTPException)
    body = _dumps({"detail": exc.detail})
    return Response(body, exc.status_code, headers=exc.headers, media_type="application/json")


def create_app(options: CogServerOptions) -> Starlette:
    """The ASGI app serving Cog's HTTP API for the model described by ``options``."""
    server = CogServer(options)
    routes = [
        Route("/", server.root, methods=["GET"]),
        Route("/health-check", server.health, methods=["GET"]),
        Route("/openapi.json", server.openapi, methods=["GET"]),
        Route("/docs", server.docs, methods=["GET"]),
        Route("/shutdown", server.shutdown_route, methods=["POST"]),
    ]
    for noun in ("predictions", "trainings"):
        routes += [
            Route(f"/{noun}", server.create, methods=["POST"]),
            Route(f"/{noun}/{{prediction_id}}", server.create, methods=["PUT"]),
            Route(f"/{noun}/{{prediction_id}}", server.get, methods=["GET"]),
            Route(f"/{noun}/{{prediction_id}}/cancel", server.cancel, methods=["POST"]),
        ]
    app = Starlette(
        routes=by_path(routes),
        lifespan=server.lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.cog = server
    return app
