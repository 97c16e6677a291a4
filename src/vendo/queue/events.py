"""In-memory publish/subscribe of prediction events, with replay.

Each prediction has a channel holding every event published on it, numbered from 1.
A subscriber first gets the history after the id it already has (SSE's
``Last-Event-ID``), then live events, and stops after the ``done`` event. Channels are
dropped ``keep`` seconds after their ``done`` (sooner, oldest first, when more than
``keep_max`` are kept); a later reader rebuilds the story from the store instead.

Event names: ``start`` (now processing), ``output`` (one iterator item, or the whole
output of a non-iterator model), ``logs`` (new log text), ``error`` (``{"detail": ...}``)
and ``done`` (``{}``, ``{"reason": "canceled"}`` or ``{"reason": "error"}``), always
last. The bus lives on one event loop: publish from that loop's thread (the scheduler
does), or through :meth:`EventBus.publish_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from vendo.status import DONE, terminal_events

__all__ = ["DONE", "Event", "EventBus", "Listener", "terminal_events"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    id: int
    event: str
    data: Any


@dataclass
class _Channel:
    events: list[Event] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    closed_at: float | None = None


Listener = Callable[[str, Event], None]


class EventBus:
    """Per-prediction channels with a replay history."""

    def __init__(self, keep: float = 300.0, keep_max: int = 10_000) -> None:
        self.keep = keep
        # At thousands of predictions a second, five minutes of finished channels would
        # be hundreds of thousands of them: the oldest go first past this many. A later
        # reader of a dropped one gets the story from the store instead.
        self.keep_max = keep_max
        self._channels: dict[str, _Channel] = {}
        # Closed channels in closing order: pruning looks only at the oldest ones, so a
        # publish costs the same with ten thousand finished predictions kept as with none.
        self._closed: deque[tuple[float, str]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(prediction_id, event)`` for every event of every prediction,
        synchronously inside :meth:`publish`: it must return quickly (queue the work)."""
        self._listeners.append(listener)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop :meth:`publish_threadsafe` hands events to (the app's lifespan
        binds it)."""
        self._loop = loop

    def publish(
        self, prediction_id: str, event: str, data: Any = None, *, relayed: bool = False
    ) -> Event | None:
        """Add an event and wake the subscribers. Ignored after ``done``. A ``relayed``
        event comes from another process (:mod:`vendo.queue.cluster`): the listeners
        are not told, that process told its own."""
        self._prune()
        channel = self._channels.setdefault(prediction_id, _Channel())
        if channel.closed_at is not None:
            return None
        item = Event(len(channel.events) + 1, event, data)
        channel.events.append(item)
        if event == DONE:
            channel.closed_at = time.monotonic()
            self._closed.append((channel.closed_at, prediction_id))
        waiter, channel.changed = channel.changed, asyncio.Event()
        waiter.set()
        if relayed:
            return item
        for listener in self._listeners:
            try:
                listener(prediction_id, item)
            except Exception:
                log.exception("event listener failed on %s of %s", event, prediction_id)
        return item

    def publish_threadsafe(self, prediction_id: str, event: str, data: Any = None) -> None:
        if self._loop is None:
            raise RuntimeError("EventBus.bind(loop) was not called")
        self._loop.call_soon_threadsafe(self.publish, prediction_id, event, data)

    def history(self, prediction_id: str) -> list[Event] | None:
        """Every event so far, or None when the bus has no channel for it."""
        channel = self._channels.get(prediction_id)
        return None if channel is None else list(channel.events)

    async def subscribe(self, prediction_id: str, after: int = 0) -> AsyncIterator[Event]:
        """Events with ids above ``after``, live, ending after ``done``."""
        channel = self._channels.setdefault(prediction_id, _Channel())
        seen = after
        while True:
            waiter = channel.changed
            for item in channel.events[seen:]:
                seen = item.id
                yield item
                if item.event == DONE:
                    return
            if channel.closed_at is not None and seen >= len(channel.events):
                return
            await waiter.wait()

    async def wait_done(self, prediction_id: str, timeout: float) -> bool:
        """True once the prediction's ``done`` is published, False after ``timeout`` s."""
        if timeout <= 0:
            return self.is_done(prediction_id)

        async def _wait() -> None:
            async for item in self.subscribe(prediction_id):
                if item.event == DONE:
                    return

        try:
            await asyncio.wait_for(_wait(), timeout)
        except asyncio.TimeoutError:
            return self.is_done(prediction_id)
        return True

    def is_done(self, prediction_id: str) -> bool:
        channel = self._channels.get(prediction_id)
        return channel is not None and channel.closed_at is not None

    def _prune(self) -> None:
        now = time.monotonic()
        closed = self._closed
        while closed and (now - closed[0][0] > self.keep or len(closed) > self.keep_max):
            closed_at, key = closed.popleft()
            channel = self._channels.get(key)
            # the channel may have been dropped and opened again since (a late reader)
            if channel is not None and channel.closed_at == closed_at:
                del self._channels[key]
