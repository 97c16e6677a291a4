"""OpenTelemetry traces of a prediction: the API request, its wait in the queue, its run
on a runner. On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the optional extra is
installed (``pip install 'vendo[otel]'``); otherwise every call here does nothing.

One trace per request that creates a prediction::

    POST /v1/predictions              (the HTTP request: vendo.api.metrics)
      prediction.queue                (created -> handed to a runner)
      prediction.run                  (handed to a runner -> its end, with the status)

The request's context is remembered per prediction (:func:`remember`) when the API
creates it, so the scheduler's spans join that trace whichever task runs them; the
claim loop runs queued ones long after the request has answered.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

__all__ = ["enabled", "flush", "forget", "queued", "remember", "request_span", "run_span", "setup"]

log = logging.getLogger(__name__)

_tracer: Any = None
_contexts: dict[str, Any] = {}  # prediction id -> the context of the request creating it
_LIMIT = 100_000  # contexts kept at most (a lost end must not grow this for ever)


def setup() -> bool:
    """Start exporting when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (once per process);
    whether traces are on."""
    global _tracer
    if _tracer is not None:
        return True
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'vendo[otel]' for traces"
        )
        return False
    service = os.environ.get("OTEL_SERVICE_NAME", "vendo")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("vendo")
    return True


def enabled() -> bool:
    return _tracer is not None


def flush() -> None:
    """Export what is pending (the server is stopping)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    force = getattr(provider, "force_flush", None)
    if force is not None:
        force(5000)


@contextmanager
def request_span(method: str) -> Iterator[Any]:
    """The span of one HTTP request, current while it is handled; the caller names it
    once the route is known (``span.update_name``)."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with _tracer.start_as_current_span(f"{method}", kind=SpanKind.SERVER) as span:
        span.set_attribute("http.request.method", method)
        yield span


def remember(prediction_id: str) -> None:
    """The current context (the request creating ``prediction_id``) is its trace's."""
    if _tracer is None:
        return
    from opentelemetry import context

    if len(_contexts) >= _LIMIT:
        _contexts.pop(next(iter(_contexts)))
    _contexts[prediction_id] = context.get_current()


def forget(prediction_id: str) -> None:
    _contexts.pop(prediction_id, None)


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)


def queued(prediction_id: str, pool: str, created_at: datetime | None) -> None:
    """The prediction leaves the queue now: its ``prediction.queue`` span, from its
    creation."""
    if _tracer is None or created_at is None:
        return
    parent = _contexts.get(prediction_id)
    span = _tracer.start_span("prediction.queue", context=parent, start_time=_ns(created_at))
    span.set_attribute("vendo.prediction.id", prediction_id)
    span.set_attribute("vendo.pool", pool)
    span.end()


@contextmanager
def run_span(prediction_id: str, pool: str, version_id: str) -> Iterator[Any]:
    """The run on a runner; yields the span (None when off) for its status."""
    if _tracer is None:
        yield None
        return
    parent = _contexts.get(prediction_id)
    with _tracer.start_as_current_span("prediction.run", context=parent) as span:
        span.set_attribute("vendo.prediction.id", prediction_id)
        span.set_attribute("vendo.pool", pool)
        span.set_attribute("vendo.version", version_id)
        yield span
