"""The SSE route of a prediction (``urls.stream``): live bus events, or the story of a
finished prediction replayed from its row (spec/replicate-api.md section 5)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from vendo.api.v1.context import Platform, base_url, call, platform
from vendo.api.v1.render import iterator_versions, verify_stream_token
from vendo.api.v1.stream import KEEPALIVE_INTERVAL, format_comment, format_event, output_text
from vendo.errors import Forbidden, NotFound
from vendo.queue.events import Event, terminal_events
from vendo.store import FAILED, TERMINAL, PredictionRow

__all__ = ["stream_prediction"]


def _replay(row: PredictionRow, iterator: bool) -> list[Event]:
    """The story of a finished prediction whose live events are gone."""
    story: list[tuple[str, Any]] = []
    outputs = row.output if iterator and isinstance(row.output, list) else [row.output]
    if row.status != FAILED and row.output is not None:
        story.extend(("output", item) for item in outputs)
    story.extend(terminal_events(row.status, row.error))
    return [Event(n, name, data) for n, (name, data) in enumerate(story, 1)]


def _renderer(p: Platform, base: str, owner: str) -> Callable[[Event], str | None]:
    """Bus events as SSE text (None: not part of the SSE protocol)."""

    def render(event: Event) -> str | None:
        if event.event == "output":
            value = p.storage.render(event.data, base, owner)
            return format_event(event.id, "output", output_text(value))
        if event.event == "logs":
            return format_event(event.id, "logs", str(event.data))
        if event.event in ("error", "done"):
            return format_event(event.id, event.event, json.dumps(event.data or {}))
        return None  # "start" and internal events are not part of the SSE protocol

    return render


async def _live(p: Platform, prediction_id: str, after: int) -> AsyncIterator[Event | None]:
    """The prediction's bus events after ``after``; None now and then (keep-alive)."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in p.bus.subscribe(prediction_id, after):
                await queue.put(event)
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        while True:
            try:
                item: Event | None = await asyncio.wait_for(queue.get(), KEEPALIVE_INTERVAL)
            except asyncio.TimeoutError:
                yield None
                continue
            if item is None:
                return
            yield item
    finally:
        task.cancel()


async def stream_prediction(request: Request) -> Response:
    """Server-sent events of a prediction (urls.stream; token-signed)."""
    p = platform(request)
    prediction_id = request.path_params["id"]
    token = request.query_params.get("token", "")
    if not token or not verify_stream_token(p, prediction_id, token):
        raise Forbidden("invalid stream token")
    row = await call(p.store.predictions.get, prediction_id)
    if row is None:
        raise NotFound(f"prediction {prediction_id} not found")
    owner_user = await call(p.store.accounts.user, row.owner_id)
    owner = owner_user.username if owner_user else ""
    base = base_url(request)
    iterator = bool(await iterator_versions(p, {row.version_id}))
    last = request.headers.get("last-event-id", "0")
    # an event id is a small counter: anything else (non-ASCII digits, 5000 digits)
    # means "from the start" rather than an error
    after = int(last) if last.isascii() and last.isdigit() and len(last) <= 18 else 0
    history = p.bus.history(prediction_id)
    replay: list[Event] | None = None
    if history is None and row.status in TERMINAL:
        replay = [e for e in _replay(row, iterator) if e.id > after]
    render = _renderer(p, base, owner)

    async def body() -> AsyncIterator[str]:
        if replay is not None:
            for event in replay:
                text = render(event)
                if text:
                    yield text
            return
        async for item in _live(p, prediction_id, after):
            text = format_comment() if item is None else render(item)
            if text:
                yield text

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
    )
