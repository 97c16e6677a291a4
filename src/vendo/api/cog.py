"""Cog's HTTP API for one model: the routes of ``vendo serve-model``.

Routes only: request parsing (:mod:`vendo.api.cog_requests`) and responses. Below
them is serve-model's engine, :mod:`vendo.serving`.

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
import json
import platform
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from vendo import __version__
from vendo.api.cog_requests import (
    Rejected,
    check_context,
    check_webhook,
    prediction_id,
    read_payload,
)
from vendo.api.routing import by_path
from vendo.config import Settings
from vendo.scheduler.process import RunnerState
from vendo.schema import InputValidationError
from vendo.serving.engine import ModelEngine
from vendo.serving.options import CogServerOptions
from vendo.serving.records import PredictionRecord, new_prediction_id
from vendo.serving.service import PredictionService

__all__ = ["CogServerOptions", "create_app", "prefers_async"]

# The Cog release whose HTTP API this follows (reported as ``cog_version`` in GET /).
COG_API_VERSION = "0.23.1"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


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
        self.engine = ModelEngine(options)
        self.services = self.engine.services

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.engine.start()
        try:
            yield
        finally:
            await self.engine.stop()

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

    async def health(self, request: Request) -> Response:
        runner = self.engine.health_runner()
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

    async def openapi(self, request: Request) -> Response:
        document = self.engine.openapi_document()
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
