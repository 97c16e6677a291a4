"""The SSE event stream of a ``vendo serve-model`` prediction, with a bounded replay
history: the events in Cog's words (``start``, ``output``, ``log``, ``metric``,
``completed``), rendered once as they are published."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["EventStream"]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class EventStream:
    """One prediction's SSE events with a bounded replay history.

    Events are numbered; a subscriber keeps the number of the next event it wants. When
    that event has already fallen out of the history (a reconnect after more than
    ``capacity`` events, or a reader that fell behind) it gets ``error {error,
    skipped}`` and the stream ends for it.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._events: deque[bytes] = deque()
        self._first = 0  # number of _events[0]
        self._closed = False
        self._changed = asyncio.Event()
        self._drop_when_idle = False
        self.subscribers = 0

    @property
    def end(self) -> int:
        return self._first + len(self._events)

    def publish(self, name: str, data: Any, *, final: bool = False) -> None:
        if self._closed:
            return
        self._events.append(b"event: %s\ndata: %s\n\n" % (name.encode(), _dumps(data).encode()))
        # capacity 0 turns replay off: keep only what live readers still need
        keep = max(self.capacity, 1 if self.subscribers else 0)
        while len(self._events) > keep and not (final and len(self._events) == 1):
            self._events.popleft()
            self._first += 1
        if final:
            self._closed = True
        self._changed.set()
        self._changed = asyncio.Event()

    def drop_history(self) -> None:
        """Forget the events once no reader needs them; a later reader is told how
        many it missed."""
        if self.subscribers:
            self._drop_when_idle = True
            return
        self._first += len(self._events)
        self._events.clear()

    async def subscribe(self, start: int = 0, keepalive: float = 15.0) -> AsyncIterator[bytes]:
        self.subscribers += 1
        try:
            position = start
            while True:
                if position < self._first:
                    skipped = self._first - position
                    yield (
                        b"event: error\ndata: %s\n\n"
                        % _dumps({"error": "event history lost", "skipped": skipped}).encode()
                    )
                    return
                if position < self.end:
                    chunk = b"".join(
                        self._events[i - self._first] for i in range(position, self.end)
                    )
                    position = self.end
                    yield chunk
                    continue
                if self._closed:
                    return
                changed = self._changed
                try:
                    await asyncio.wait_for(changed.wait(), keepalive)
                except asyncio.TimeoutError:
                    yield b": keep-alive\n\n"
        finally:
            self.subscribers -= 1
            if self._drop_when_idle and not self.subscribers:
                self._drop_when_idle = False
                self.drop_history()
