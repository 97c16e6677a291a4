"""The records of ``vendo serve-model``: the Cog prediction object as it is built from
the runner's events, and its SSE event stream with a bounded replay history."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vendo.status import TERMINAL
from vendo.webhooks.sender import PredictionWebhook

__all__ = [
    "SECRET_MASK",
    "EventStream",
    "FetchLimits",
    "PredictionRecord",
    "new_prediction_id",
    "now_iso",
]

SECRET_MASK = "**********"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def new_prediction_id() -> str:
    # Replicate's shape: 26 lowercase base32 characters
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").lower().rstrip("=")[:26]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


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


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 100 * 1024 * 1024
    max_data_uri_bytes: int = 10 * 1024 * 1024
    timeout: float = 300.0
    allow_private: bool = True


class PredictionRecord:
    """The prediction object of Cog's API, updated as runner events arrive.

    Once finished it is sealed: the JSON is rendered once and the object graph behind
    it is dropped, so thousands of retained results cost little memory and give the
    garbage collector little to walk.
    """

    __slots__ = (
        "cancel_on_disconnect",
        "cancel_requested",
        "chain",
        "completed_at",
        "context",
        "created_at",
        "error",
        "finished",
        "finished_at",
        "id",
        "input",
        "logs",
        "masked_input",
        "metrics",
        "output",
        "outputs",
        "sse_created",
        "started_at",
        "status",
        "stream",
        "webhook",
        "work_dir",
        "_json",
    )

    def __init__(self, id: str, input: dict[str, Any], masked_input: dict[str, Any]) -> None:
        self.id = id
        self.input: dict[str, Any] | None = input
        self.masked_input: dict[str, Any] | None = masked_input
        self.status = "starting"
        self.output: Any = None
        self.outputs: list[Any] | None = None
        self.logs: list[str] = []
        self.error: str | None = None
        self.metrics: dict[str, Any] = {}
        self.created_at = now_iso()
        self.started_at: str | None = None
        self.completed_at: str | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.finished_at = 0.0
        self.webhook: PredictionWebhook | None = None
        self.stream: EventStream | None = None
        self.sse_created = False
        self.cancel_on_disconnect = False
        self.cancel_requested = False
        self.context: dict[str, str] = {}
        self.work_dir: Path | None = None
        self.chain: asyncio.Task[Any] | None = None
        self._json: bytes | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        if self._json is not None:
            sealed: dict[str, Any] = json.loads(self._json)
            return sealed
        return {
            "id": self.id,
            "status": self.status,
            "input": self.masked_input,
            "output": self.outputs if self.outputs is not None else self.output,
            "logs": "".join(self.logs),
            "error": self.error,
            "metrics": self.metrics,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
        }

    def to_json(self) -> bytes:
        if self._json is not None:
            return self._json
        return _dumps(self.to_dict()).encode()

    def seal(self) -> dict[str, Any]:
        """Render the final object once and let go of what it was built from."""
        body = self.to_dict()
        self._json = _dumps(body).encode()
        self.input = self.masked_input = self.output = self.outputs = None
        self.logs = []
        self.metrics = {}
        self.context = {}
        self.chain = None
        return body
