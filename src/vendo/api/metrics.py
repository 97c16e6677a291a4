"""``GET /metrics``: Prometheus metrics of the server (docs/deployments.md, Metrics).

- ``vendo_queue_depth{pool}``: queued (unclaimed) predictions of each pool;
- ``vendo_instances{pool,state}``: instances by state, ``starting``/``idle``/``busy``;
- ``vendo_instances_unplaced{pool}``: 1 while this machine lacks the capacity for an
  instance the pool wants (its predictions stay queued; the log says why);
- ``vendo_predictions_total{pool,status}``, ``vendo_prediction_duration_seconds{pool}``:
  from the scheduler (:mod:`vendo.scheduler.metrics`);
- ``vendo_http_requests_total{method,route,status}`` and
  ``vendo_http_request_duration_seconds{method,route}``: from :class:`HttpMetrics`.

A pool label is ``deployment:<owner>/<name>`` or ``version:<id>``. The route needs an API
token unless ``Settings.metrics_public``.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vendo.api.v1.context import call, caller, platform
from vendo.scheduler import tracing

__all__ = ["HttpMetrics", "metrics_route"]

# What the instance states are called here (Replicate's web metrics: starting, idle,
# processing), from the scheduler's setting_up/idle/active.
_STATES = {"setting_up": "starting", "idle": "idle", "active": "busy"}
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)
# Any other method a client sends is counted as "other": a label value per made-up
# method would let clients grow the series (and this process's memory) without end.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "QUERY"})


class HttpMetrics:
    """ASGI middleware: counts requests and times them by method, route template and
    status (a template, never the raw path: ids would make a series each)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "vendo_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "vendo_http_request_duration_seconds",
            "Seconds from a request's arrival to its response's start.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        # The labelled children, made once: ``labels()`` costs more than the count itself
        # and runs on every request.
        self._timers: dict[tuple[str, str], Any] = {}
        self._counters: dict[tuple[str, str, int], Any] = {}

    def _timed(self, method: str, route: str, seconds: float) -> None:
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[method, route] = self.duration.labels(method, route)
        timer.observe(seconds)

    def _counted(self, method: str, route: str, status: int) -> None:
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self.requests.labels(method, route, str(status))
            self._counters[method, route, status] = counter
        counter.inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["vendo.http_metrics"] = self
        began = time.monotonic()
        status = 500
        method = scope["method"] if scope["method"] in _METHODS else "other"

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                route = getattr(scope.get("route"), "path", "unmatched")
                self._timed(method, route, time.monotonic() - began)
            await send(message)

        if not tracing.enabled():
            try:
                await self.app(scope, receive, sending)
            finally:
                route = getattr(scope.get("route"), "path", "unmatched")
                self._counted(method, route, status)
            return
        with tracing.request_span(scope["method"]) as span:
            try:
                await self.app(scope, receive, sending)
            finally:
                route = getattr(scope.get("route"), "path", "unmatched")
                self._counted(method, route, status)
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)


def _gauges(states: dict[str, dict[str, int]], depths: dict[str, int]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    depth = Gauge(
        "vendo_queue_depth", "Queued (unclaimed) predictions.", ["pool"], registry=registry
    )
    instances = Gauge(
        "vendo_instances", "Instances by state.", ["pool", "state"], registry=registry
    )
    unplaced = Gauge(
        "vendo_instances_unplaced",
        "1 while this machine lacks capacity for an instance the pool wants.",
        ["pool"],
        registry=registry,
    )
    for key, count in depths.items():
        depth.labels(key).set(count)
    for key, counts in states.items():
        for state, label in _STATES.items():
            instances.labels(key, label).set(counts.get(state, 0))
        unplaced.labels(key).set(counts.get("unplaced", 0))
    return registry


async def get_metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format)."""
    p = platform(request)
    if not p.settings.metrics_public:
        await caller(request)
    states: dict[str, dict[str, int]] = {}
    registries: list[Any] = []
    if p.scheduler is not None:
        states = p.scheduler.pool_states()
        registries.append(p.scheduler.metrics_registry)
    queue = p.queue

    def depths() -> dict[str, int]:
        keys = set(states) | set(queue.pending_pools())
        return {key: queue.depth(key) for key in sorted(keys)}

    registries.append(_gauges(states, await call(depths)))
    http = request.scope.get("vendo.http_metrics")
    if isinstance(http, HttpMetrics):
        registries.append(http.registry)
    body = b"".join(generate_latest(r) for r in registries)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def metrics_route() -> Route:
    return Route("/metrics", get_metrics, methods=["GET"])
