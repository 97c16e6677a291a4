"""Webhook delivery, Cog style: filtered, throttled, serialized, ``completed`` retried.

Three layers, so the platform can add to each without rewriting the others:

- :class:`WebhookMessage` is one event to deliver. Its ``id`` stays the same across
  retries of that event, which is what Standard Webhooks signing needs (``webhook-id``).
- :class:`WebhookSender` makes HTTP attempts. Headers come from ``User-Agent``,
  ``Authorization`` and any :class:`Signer` (the platform plugs its Standard Webhooks
  signer in here; the signature is computed per attempt because the timestamp is).
  ``completed`` messages go through ``final_delivery``, by default the sender's own
  in-memory retry loop; a durable outbox replaces just that function.
- :class:`PredictionWebhook` is one prediction's stream of events: it applies the events
  filter, sends ``start`` and ``completed`` at once, coalesces ``output``/``logs`` to at
  most one per throttle interval with a trailing send of the latest state, delivers one
  message at a time in order, and sends nothing after ``completed``.

A webhook receiver that is down never affects the model: failures are logged, never
raised into the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from vendo.webhooks.signing import new_message_id, signature_headers

__all__ = [
    "EVENTS",
    "PredictionWebhook",
    "RetryPolicy",
    "Signer",
    "StandardWebhooksSigner",
    "WebhookMessage",
    "WebhookSender",
    "parse_events_filter",
]

log = logging.getLogger(__name__)

EVENTS = ("start", "output", "logs", "completed")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def parse_events_filter(value: Iterable[str] | None) -> frozenset[str]:
    """The events a caller asked for; all four when it did not say (Cog's default)."""
    if value is None:
        return frozenset(EVENTS)
    events = frozenset(value)
    unknown = events - set(EVENTS)
    if unknown:
        raise ValueError(
            f"unknown webhook events {sorted(unknown)}: choose from {', '.join(EVENTS)}"
        )
    return events


@dataclass(frozen=True)
class WebhookMessage:
    url: str
    event: str
    body: bytes
    id: str = field(default_factory=new_message_id)
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.event == "completed"


class Signer(Protocol):
    """Adds signature headers to one delivery attempt."""

    def headers(self, message: WebhookMessage, timestamp: int) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class StandardWebhooksSigner:
    """Signs with one account secret, or several while one is being rotated."""

    secrets: tuple[str, ...]

    def headers(self, message: WebhookMessage, timestamp: int) -> Mapping[str, str]:
        return signature_headers(self.secrets, message.id, message.body, timestamp=timestamp)


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts for a ``completed`` message: ``base * 2**n`` seconds apart, capped."""

    attempts: int = 12
    base: float = 0.1
    cap: float = 60.0
    # Cog retries these (and network errors); None retries any 4xx/5xx (Replicate).
    statuses: frozenset[int] | None = RETRY_STATUSES

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.base * (2**attempt))

    def retries(self, status: int | None) -> bool:
        if status is None:
            return True
        if self.statuses is None:
            return status >= 400
        return status in self.statuses


class WebhookSender:
    """HTTP delivery of webhook messages; one per server, shared by all predictions."""

    def __init__(
        self,
        *,
        user_agent: str,
        auth_token: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        signer: Signer | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.user_agent = user_agent
        self.auth_token = auth_token
        self.retry = retry or RetryPolicy()
        self.signer = signer
        self._own_client = client is None
        # Receivers that redirect are not followed (Replicate's behaviour).
        self._client = client or httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False
        )

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    def _headers(self, message: WebhookMessage) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": self.user_agent}
        if self.auth_token:
            headers["Authorization"] = f"Bearer {self.auth_token}"
        headers.update(message.headers)
        if self.signer is not None:
            headers.update(self.signer.headers(message, int(time.time())))
        return headers

    async def attempt(self, message: WebhookMessage) -> int | None:
        """One POST; the status code, or None on a network error."""
        try:
            response = await self._client.post(
                message.url, content=message.body, headers=self._headers(message)
            )
        except httpx.HTTPError as exc:
            log.warning("webhook %s to %s failed: %s", message.event, message.url, exc)
            return None
        if response.status_code >= 300:
            log.warning(
                "webhook %s to %s answered %d", message.event, message.url, response.status_code
            )
        return response.status_code

    async def deliver(self, message: WebhookMessage) -> bool:
        """Send once, or with retries for ``completed``; True once it was accepted."""
        attempts = self.retry.attempts if message.final else 1
        for n in range(attempts):
            status = await self.attempt(message)
            if status is not None and 200 <= status < 300:
                return True
            if not self.retry.retries(status):
                return False
            if n + 1 < attempts:
                await asyncio.sleep(self.retry.delay(n))
        return False


FinalDelivery = Callable[[WebhookMessage], Awaitable[Any]]


class PredictionWebhook:
    """One prediction's webhook events, filtered, throttled and in order.

    ``snapshot`` returns the prediction object as it is now; it is read when a message
    is sent, so a throttled send carries the latest state.
    """

    def __init__(
        self,
        sender: WebhookSender,
        url: str,
        snapshot: Callable[[], Mapping[str, Any]],
        *,
        events: frozenset[str] = frozenset(EVENTS),
        throttle_interval: float = 0.5,
        headers: Mapping[str, str] | None = None,
        final_delivery: FinalDelivery | None = None,
    ) -> None:
        self.sender = sender
        self.url = url
        self.events = events
        self.throttle_interval = throttle_interval
        self._snapshot = snapshot
        self._headers = dict(headers or {})
        self._final_delivery = final_delivery or sender.deliver
        self._start: WebhookMessage | None = None
        self._progress: str | None = None
        self._completed = False
        self._last_progress = float("-inf")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self, event: str) -> None:
        """Record that ``event`` happened; returns at once, delivery runs in a task."""
        if self._completed:
            return
        if event == "completed":
            self._completed = True
        elif event not in self.events:
            return
        elif event == "start":
            # the state as it is now: by the time the task sends it, a quick prediction
            # may already be done, and ``start`` must still say ``processing``
            self._start = self._message("start")
        else:
            self._progress = event
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    async def wait_closed(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _message(self, event: str) -> WebhookMessage:
        body = json.dumps(self._snapshot(), separators=(",", ":")).encode()
        return WebhookMessage(self.url, event, body, headers=self._headers)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._start is not None:
                message, self._start = self._start, None
                await self.sender.deliver(message)
            elif self._completed:
                if "completed" in self.events:
                    try:
                        await self._final_delivery(self._message("completed"))
                    except Exception:  # a broken outbox must not take the server down
                        log.exception("webhook completed delivery to %s failed", self.url)
                return
            elif self._progress is not None:
                wait = self._last_progress + self.throttle_interval - loop.time()
                if wait > 0:
                    # sleep out the interval, but wake early for ``completed``
                    self._wake.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wait_completed(), wait)
                    continue
                event, self._progress = self._progress, None
                self._last_progress = loop.time()
                await self.sender.deliver(self._message(event))
            else:
                self._wake.clear()
                await self._wake.wait()

    async def _wait_completed(self) -> None:
        while not self._completed:
            self._wake.clear()
            await self._wake.wait()
