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

STORE_CHECK_INTERVAL = 5.0  # scaled mode: seconds without an event before a store check


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


async def _live(
    p: Platform, prediction_id: str, after: int, interval: float
) -> AsyncIterator[Event | None]:
    """The prediction's bus events after ``after``; None after ``interval`` seconds
    without one (keep-alive)."""
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
                item: Event | None = await asyncio.wait_for(queue.get(), interval)
            except asyncio.TimeoutError:
                yield None
                continue
            if item is None:
                return
            yield item
    finally:
        task.cancel()


async def _missed_end(
    p: Platform, prediction_id: str, iterator: bool, seen: int
) -> list[Event] | None:
    """When the store says the prediction ended but its ``done`` never came: the rest of
    its story (all of it when nothing came, else its terminal events), numbered on from
    ``seen``. None while it runs."""
    if p.bus.is_done(prediction_id):
        return None
    row = await call(p.store.predictions.get, prediction_id)
    if row is None or row.status not in TERMINAL:
        return None
    if seen == 0:
        return _replay(row, iterator)
    ending = terminal_events(row.status, row.error)
    return [Event(seen + n, name, data) for n, (name, data) in enumerate(ending, 1)]


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
        seen = after
        # Scaled mode: the events come from another process; one lost on the way (a
        # database restart) must not leave the stream open forever.
        interval = KEEPALIVE_INTERVAL if p.cluster is None else STORE_CHECK_INTERVAL
        async for item in _live(p, prediction_id, after, interval):
            if item is None and p.cluster is not None:
                missed = await _missed_end(p, prediction_id, iterator, seen)
                if missed:
                    for event in missed:
                        yield render(event) or ""
                    return
            text = format_comment() if item is None else render(item)
            seen = seen if item is None else item.id
            if text:
                yield text

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
    )
