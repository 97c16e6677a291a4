"""``create_app(settings)``: the platform as one ASGI application.

The lifespan opens the store (running migrations), creates the admin on a fresh data
dir, starts the event bus, file storage and the scheduler, and runs the retention
sweeper; on shutdown it stops them in reverse order. Nothing happens at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from vendo.api.metrics import HttpMetrics, metrics_route
from vendo.api.responses import JSONResponse
from vendo.api.routing import by_path
from vendo.api.v1 import routes as v1_routes
from vendo.api.v1.context import Platform
from vendo.api.v1.openapi import openapi_route
from vendo.api.v1.push import push_examples
from vendo.api.v1.webhooks import WebhookRelay
from vendo.config import Settings
from vendo.errors import VendoError, problem
from vendo.files.storage import FileStorage
from vendo.hardware import Hardware, capacity, server_hardware
from vendo.queue import EventBus, Queue
from vendo.queue.cluster import ClusterRelay
from vendo.queue.liveness import Liveness
from vendo.scheduler import Scheduler, tracing
from vendo.store import Store, database_url, utcnow
from vendo.store.sealing import SecretBox
from vendo.web import routes as web_routes
from vendo.webhooks.outbox import Outbox

__all__ = [
    "TOKEN_FILE",
    "SchedulerFactory",
    "bootstrap_admin",
    "create_app",
    "open_platform",
    "sweep_once",
    "watch_agents",
]

log = logging.getLogger(__name__)

TOKEN_FILE = "api_token"  # in the data dir, mode 0600: `vendo push/run` read it
SchedulerFactory = Callable[[Settings, Store, EventBus, FileStorage], Any]
PROBLEM = "application/problem+json"


def bootstrap_admin(settings: Settings, store: Store) -> str | None:
    """Create the admin on a fresh store. Its token is ``settings.api_token`` when set;
    otherwise a new one, saved to ``<data_dir>/api_token`` (0600). Returns a generated
    token (to print once), else None."""
    _, token = store.accounts.ensure_admin(settings.api_token)
    if token is None or settings.api_token:
        return None
    path = Path(settings.data_dir) / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def sweep_once(settings: Settings, store: Store, storage: FileStorage) -> int:
    """Retention: clear predictions completed more than ``settings.retention`` seconds
    ago (input {}, output null, logs "", files deleted, data_removed) and delete expired
    uploads. Returns how many records changed."""
    cutoff = utcnow() - timedelta(seconds=settings.retention)
    removed = store.predictions.remove_data(cutoff)
    for row in removed:
        if row.input_dir:
            shutil.rmtree(row.input_dir, ignore_errors=True)
        storage.delete_prediction_files(row.id)
    return len(removed) + storage.purge_expired()


class _Arrival:
    """Stamps each request with its arrival time: ``Prefer: wait`` counts from it. Refuses
    a URL holding a NUL (``%00``): no name or parameter may hold one, and PostgreSQL
    fails on any query that carries one (a 500 on every route with a path parameter)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["vendo.arrived"] = time.monotonic()
            if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
                detail = "the URL holds a NUL character (%00), which no name or parameter may"
                await _problem_response(problem(400, "Bad Request", detail))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=int(body["status"]), media_type=PROBLEM, headers=headers)


async def _vendo_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VendoError)
    headers = exc.headers or None  # Retry-After and ratelimit-* of a RateLimited
    if exc.status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.detail)
    return _problem_response(exc.to_problem(), headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    titles = {404: "Not found", 405: "Method Not Allowed"}
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404:
        detail = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        detail = f"{request.method} is not served at {request.url.path}; allowed: {allowed}"
    title = titles.get(exc.status_code, detail)
    return _problem_response(problem(exc.status_code, title, detail), dict(exc.headers or {}))


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client went away before its request's body arrived: nothing was made, and no
    # one is left to answer. Not the server's error, so no traceback either.
    log.debug("%s %s: the client went away mid-body", request.method, request.url.path)
    return Response(status_code=400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _problem_response(
        problem(500, "Internal Server Error", "the server failed to handle this request")
    )


def create_app(
    settings: Settings | None = None,
    *,
    scheduler_factory: SchedulerFactory | None = None,
    run_scheduler: bool = True,
    sweep_interval: float | None = None,
    examples: bool = False,
) -> Starlette:
    """The platform app. ``scheduler_factory`` defaults to ``vendo.scheduler.Scheduler``;
    ``run_scheduler=False`` serves the API without running models (tests of routes).
    ``examples`` pushes the models in ``examples/`` in the background once the app is
    up."""
    settings = settings or Settings()  # type: ignore[call-arg]  # every field has a default
    hardware = server_hardware(settings)
    # the catalogue read above, not read again (and nvidia-smi run again) by the scheduler
    default = functools.partial(Scheduler, hardware=hardware) if run_scheduler else None
    factory = scheduler_factory or default
    if settings.gpu_as_cpu and not hardware.gpus:
        log.warning("VENDO_GPU_AS_CPU: GPU SKUs are offered and run on the CPU")
    routes = v1_routes()
    routes.append(openapi_route(routes, hardware.offered_skus()))
    routes.append(metrics_route())
    app = Starlette(
        # the pages last: their /{owner}/{name} would match any two-segment path
        routes=[*by_path(routes), *web_routes()],
        lifespan=_lifespan(settings, hardware, factory, sweep_interval, examples),
        exception_handlers={
            VendoError: _vendo_error,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            Exception: _unexpected,
        },
    )
    app.add_middleware(_Arrival)
    app.add_middleware(HttpMetrics)
    app.state.settings = settings
    return app


def _lifespan(
    settings: Settings,
    hardware: Hardware,
    factory: SchedulerFactory | None,
    sweep_interval: float | None,
    examples: bool,
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """Starts the platform's parts in dependency order and stops them in reverse."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tracing.setup()  # OpenTelemetry, when OTEL_EXPORTER_OTLP_ENDPOINT is set
        p = await open_platform(settings, hardware, factory)
        app.state.platform = p
        store, scheduler = p.store, p.scheduler
        worker = await _register(p)  # before the scheduler claims anything
        relay = WebhookRelay(p, Outbox.from_settings(settings, store.engines.writer))
        await relay.start()
        if p.cluster is not None:
            await p.cluster.start()
        if scheduler is not None:
            await scheduler.start()
        # after the scheduler's recovery, which may have finished interrupted predictions
        await relay.resume_owed()
        # Last of the start-up steps that can fail: a start that fails creates no admin
        # and prints no token (the examples below are pushed as the admin).
        await _announce_admin(settings, store)
        interval = sweep_interval or max(1.0, min(60.0, settings.retention / 10))
        sweeper = asyncio.create_task(_sweep_forever(settings, store, p.storage, interval))
        credit = asyncio.create_task(p.credit.watch(scheduler)) if scheduler else None
        agents = _watch(app, p, worker)
        background = await push_examples(p) if examples else None
        # What start-up made (modules, tables, settings) lives as long as the server:
        # out of the cyclic collector's sight, each full collection stays short.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            for task in (sweeper, background, credit, agents):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if scheduler is not None:
                await scheduler.stop()
            if worker is not None and not getattr(app.state, "lost", False):
                await to_thread.run_sync(store.agents.remove, worker)
            if p.cluster is not None:
                await p.cluster.stop()
            await relay.stop()
            await to_thread.run_sync(store.close)
            await to_thread.run_sync(tracing.flush)

    return lifespan


async def _register(p: Platform) -> str | None:
    """A server with runners on PostgreSQL registers in the ``agents`` table under its
    scheduler's worker id and heartbeats like an agent: if it dies, another process
    recovers its claims. Its name, or None (SQLite, ``--no-runners``)."""
    scheduler = p.scheduler
    if p.cluster is None or not isinstance(scheduler, Scheduler):
        return None
    name = scheduler.queue.worker_id
    skus = sorted(p.hardware.offered_skus())
    await to_thread.run_sync(p.store.agents.register, name, skus, capacity(p.hardware))
    return name


def _watch(app: Starlette, p: Platform, worker: str | None) -> asyncio.Task[None] | None:
    """The look for lost workers (PostgreSQL); with ``worker``, this server's heartbeat
    too. Found lost itself, the server drops its runs unwritten, claims nothing more
    and stops (``app.state.stop_server``): ``vendo serve`` exits with status 1, for its
    supervisor to restart it."""
    if p.cluster is None:
        return None
    if worker is None:
        return asyncio.create_task(watch_agents(p).run())
    scheduler = p.scheduler
    assert isinstance(scheduler, Scheduler)

    def lost() -> None:
        scheduler.abandon()
        app.state.lost = True
        stop = getattr(app.state, "stop_server", None)  # set by `vendo serve`
        if stop is not None:
            stop()

    liveness = watch_agents(p, name=worker, queue=scheduler.queue)
    liveness.on_lost = lost
    return asyncio.create_task(liveness.run(), name="vendo-heartbeat")


def watch_agents(p: Platform, *, name: str | None = None, queue: Queue | None = None) -> Liveness:
    """The look for lost agents every process on PostgreSQL keeps; with ``name``, also
    that agent's heartbeat (``queue``: the agent's own, claiming under its name)."""
    settings = p.settings
    return Liveness(
        queue or p.queue,
        p.bus,
        interval=settings.agent_heartbeat_interval,
        timeout=settings.agent_lost_timeout,
        name=name,
    )


async def open_platform(
    settings: Settings, hardware: Hardware, factory: SchedulerFactory | None
) -> Platform:
    """The database, bus, file storage, scheduler (not yet started) and secrets key."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    store = await to_thread.run_sync(
        lambda: Store.from_settings(
            Path(settings.data_dir), settings.database_url, cache_ttl=settings.cache_ttl
        )
    )
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    storage = await to_thread.run_sync(FileStorage.from_settings, settings, store)
    # Load the signing key now: rendering URLs later must not touch the database.
    await to_thread.run_sync(lambda: storage.key)
    scheduler = None
    if factory is not None:
        scheduler = factory(settings, store, bus, storage)
    # The secrets key is made (or read) now: a bad one stops the start with its error.
    box = await to_thread.run_sync(SecretBox.from_settings, settings)
    platform = Platform(
        settings, store, Queue(store), bus, storage, scheduler, secrets=box, hardware=hardware
    )
    if not store.engines.is_sqlite:
        # PostgreSQL: other servers and agents may share it (scaled mode)
        url = database_url(Path(settings.data_dir), settings.database_url)
        platform.cluster = ClusterRelay(
            bus,
            url,
            on_cancel=_cancel_here(scheduler),
            on_job=scheduler.notify if scheduler is not None else None,
        )
    return platform


def _cancel_here(scheduler: Any) -> Callable[[str], Coroutine[Any, Any, None]]:
    """What a cancel sent by another process does here: cancel the prediction when this
    process runs it (every process hears every cancel)."""

    async def cancel(prediction_id: str) -> None:
        if scheduler is not None and prediction_id in scheduler.running():
            await scheduler.cancel(prediction_id)

    return cancel


async def _announce_admin(settings: Settings, store: Store) -> None:
    """Creates the admin on the first start and prints its token, which is shown once."""
    token = await to_thread.run_sync(bootstrap_admin, settings, store)
    if token is not None:
        path = Path(settings.data_dir) / TOKEN_FILE
        print(
            f"Created the admin user. API token (shown once, saved to {path}):\n  {token}",
            file=sys.stderr,
            flush=True,
        )


async def _sweep_forever(
    settings: Settings, store: Store, storage: FileStorage, interval: float
) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await to_thread.run_sync(sweep_once, settings, store, storage)
        except Exception:
            log.exception("retention sweep failed; retrying later")
