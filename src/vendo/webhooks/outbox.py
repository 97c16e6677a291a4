"""Durable, signed, throttled webhook delivery for the platform's ``/v1`` predictions.

The scheduler (or whatever follows a prediction) calls :meth:`Outbox.publish` with the
prediction's JSON each time something happens: ``start``, ``output``, ``logs``,
``completed``. The outbox then keeps Replicate's promises (spec/replicate-api.md §6):

- filtering, throttling and ordering come from
  :class:`vendo.webhooks.sender.PredictionWebhook` (shared with ``vendo serve-model``):
  the ``webhook_events_filter`` is honoured;
  ``output``/``logs`` go out at most once per ``throttle_interval`` per prediction,
  coalesced to the latest state with a trailing send, and are tried once; deliveries of
  one prediction are sent one at a time, in order, and nothing follows ``completed``;
- the outbox replaces the sender's in-memory retry of ``completed``: it is written to
  the ``webhook_deliveries`` table as soon as it is published, retried with exponential
  backoff (last attempt about a minute after completion by default) on a network error
  or any non-2xx answer, redirects included (never followed), and removed once delivered
  or given up. A restarted server picks up what is left in the table, so delivery is at
  least once (receivers drop repeats by ``webhook-id``);
- every attempt is signed (:mod:`vendo.webhooks.signing`): the ``webhook-id`` is fixed
  per event, the timestamp is taken per attempt. The ``completed`` message's id is
  derived from (prediction, URL, event) (:func:`delivery_id`) and keys its row: one
  terminal message per prediction and URL, whatever repeats or restarts happen.

Which addresses a webhook may reach is decided by :func:`vendo.files.addresses.refusal`,
the one policy shared with input downloads (private and loopback addresses only while
``allow_private``, Settings.allow_private_urls, is on). :func:`check_webhook_url` runs at
create time (the API answers 422), host names are resolved and checked again before each
attempt, and the client connects only to the addresses it checked
(``vendo.files.fetch.guarded_transport``).

Time comes from an injectable :class:`Clock` so that tests can run a minute-long retry
schedule in milliseconds. In scaled mode (several API processes on one database) only one
process should run an outbox: rows are not leased.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import logging
import socket
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa

from vendo.files.addresses import host_refusal, parse_host, refusal
from vendo.files.fetch import guarded_transport
from vendo.jsontext import json_bytes
from vendo.webhooks.sender import (
    EVENTS,
    PredictionWebhook,
    StandardWebhooksSigner,
    WebhookMessage,
    WebhookSender,
)

__all__ = [
    "ALL_EVENTS",
    "Clock",
    "Delivery",
    "Outbox",
    "SystemClock",
    "WebhookTarget",
    "WebhookURLError",
    "check_webhook_url",
    "delivery_id",
    "deliveries_table",
    "retry_delays",
]

log = logging.getLogger("vendo.webhooks")

ALL_EVENTS: frozenset[str] = frozenset(EVENTS)

_metadata = sa.MetaData()

#: Pending ``completed`` deliveries. Created by the store's Alembic migrations; the same
#: definition lives here so the outbox needs nothing else from the store.
deliveries_table = sa.Table(
    "webhook_deliveries",
    _metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the webhook-id
    sa.Column("prediction_id", sa.String(32), nullable=False, index=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    # Unix seconds (wall clock): they must mean the same after a restart.
    sa.Column("next_attempt_at", sa.Float, nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
)


class WebhookURLError(ValueError):
    """A webhook URL Vendo will not call; the message says why."""


class Clock(Protocol):
    def time(self) -> float:
        """Unix seconds."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def retry_delays(attempts: int, horizon: float = 60.0) -> list[float]:
    """Pauses before each retry of ``completed``: doubling, summing to ``horizon``.

    ``attempts`` counts the first try, so 6 attempts give 5 pauses (about 1.9, 3.9, 7.7,
    15.5 and 31 s): the last attempt comes about a minute after completion.
    """
    retries = max(0, attempts - 1)
    if retries == 0:
        return []
    base = horizon / (2**retries - 1)
    return [base * 2**n for n in range(retries)]


def _check_address(address: str, *, allow_private: bool) -> None:
    why = refusal(address, allow_private=allow_private)
    if why is not None:
        raise WebhookURLError(f"webhooks may not target {why}")


def check_webhook_url(url: str, *, allow_private: bool = True) -> None:
    """Refuse a webhook URL before a prediction is created (no DNS lookups here).

    Raises :class:`WebhookURLError`; the API turns it into a 422 naming ``webhook``.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
        httpx.URL(url)  # what the sender will parse (it refuses octal IPv4 parts, say)
    except (ValueError, httpx.InvalidURL) as exc:
        raise WebhookURLError(f"invalid webhook URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise WebhookURLError("a webhook URL must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise WebhookURLError("a webhook URL may not carry credentials")
    why = host_refusal(host, allow_private=allow_private)
    if why is not None:
        raise WebhookURLError(f"webhooks may not target {why}")


async def _check_resolved(url: str, *, allow_private: bool) -> None:
    """Before each attempt: resolve the host and check every address it has."""
    check_webhook_url(url, allow_private=allow_private)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parse_host(host) is not None:
        return  # an address: check_webhook_url has judged it, nothing to resolve
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return  # the attempt itself fails with a clear network error, and is retried
    for info in infos:
        _check_address(str(info[4][0]), allow_private=allow_private)


def delivery_id(prediction_id: str, url: str, event: str) -> str:
    """The ``webhook-id`` of a prediction's ``completed`` message to ``url``: derived, not
    drawn, so that it is the same however often (or by whichever server run) that message
    is made, and it is the table's primary key, so that the table can never hold it twice.
    A receiver that drops repeats by ``webhook-id`` then never sees two terminal messages
    for one prediction."""
    digest = hashlib.sha256(f"{prediction_id}\n{url}\n{event}".encode()).hexdigest()
    return "msg_" + digest[:32]


@dataclass(frozen=True)
class WebhookTarget:
    """Where and how one prediction's webhooks go."""

    url: str
    secret: str
    events: frozenset[str] = ALL_EVENTS


@dataclass
class Delivery:
    """One ``completed`` event on its way to one URL (a row of ``webhook_deliveries``)."""

    id: str
    prediction_id: str
    url: str
    secret: str
    event: str
    body: bytes
    attempts: int = 0
    next_attempt_at: float = 0.0
    created_at: float = 0.0


class _CheckedSender(WebhookSender):
    """The shared sender, plus the address check before every attempt."""

    def __init__(self, *, allow_private: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_private = allow_private

    async def attempt(self, message: WebhookMessage) -> int | None:
        try:
            await _check_resolved(message.url, allow_private=self.allow_private)
        except WebhookURLError as exc:
            log.warning("webhook %s not sent: %s", message.event, exc)
            return _REFUSED
        return await super().attempt(message)


# What _CheckedSender.attempt answers for a refused address: never retried.
_REFUSED = -1


class Outbox:
    """Sends the platform's webhooks. Use inside a running event loop:
    ``await start()`` once, :meth:`publish` for each event, ``await stop()`` at shutdown.

    ``engine`` is the store's writer engine (None: pending deliveries live in memory
    only). ``delays`` are the pauses before each retry of ``completed``. ``clock`` times
    those retries (tests pass a virtual one); ``transport`` lets a test route requests.
    """

    def __init__(
        self,
        engine: sa.Engine | None = None,
        *,
        timeout: float = 10.0,
        throttle_interval: float = 0.5,
        delays: Sequence[float] | None = None,
        allow_private: bool = True,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = "vendo",
    ) -> None:
        self._engine = engine
        self._timeout = timeout
        self._interval = throttle_interval
        self._delays = list(retry_delays(6) if delays is None else delays)
        self._allow_private = allow_private
        self._clock: Clock = clock or SystemClock()
        self._transport = transport
        self._user_agent = user_agent
        self._client: httpx.AsyncClient | None = None
        # one PredictionWebhook per (prediction, url), with the latest payload it sends
        self._webhooks: dict[tuple[str, str], PredictionWebhook] = {}
        self._latest: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._completed: set[tuple[str, str]] = set()
        # completed deliveries recorded at publish time, and the write that records them
        self._finals: dict[tuple[str, str], tuple[Delivery, asyncio.Task[None]]] = {}
        # resumed deliveries, and waits on predictions whose completed is on its way
        self._tasks: set[asyncio.Task[None]] = set()
        self.resumed: set[str] = set()  # predictions whose completed start() resumed

    @classmethod
    def from_settings(cls, settings: Any, engine: sa.Engine | None, **overrides: Any) -> Outbox:
        """An outbox configured from :class:`vendo.config.Settings`."""
        options: dict[str, Any] = {
            "user_agent": _user_agent(),
            "timeout": settings.webhook_timeout,
            "throttle_interval": settings.throttle_interval,
            "delays": retry_delays(settings.webhook_retries),
            "allow_private": settings.allow_private_urls,
        }
        options.update(overrides)
        return cls(engine, **options)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP client and resume the deliveries a previous run left pending."""
        allow_private = self._allow_private

        def check(address: str) -> None:
            _check_address(address, allow_private=allow_private)

        self._client = httpx.AsyncClient(
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,
            # checked where it connects, not only before (see vendo.files.fetch)
            transport=self._transport or guarded_transport(check),
        )
        for delivery in await self._load_pending():
            log.info("resuming webhook %s for prediction %s", delivery.id, delivery.prediction_id)
            self.resumed.add(delivery.prediction_id)
            self._track(self._deliver_durably(delivery))

    async def stop(self) -> None:
        """Stop sending. Pending ``completed`` deliveries stay in the table."""
        saves = [task for _, task in self._finals.values()]
        await asyncio.gather(*saves, return_exceptions=True)  # let the records land
        for webhook in self._webhooks.values():
            webhook.cancel()
        tasks = [*self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._webhooks.clear()
        self._latest.clear()
        self._completed.clear()
        self._finals.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def drain(self) -> None:
        """Wait until every ``completed`` published so far (and every resumed one) has
        been delivered or given up. Progress of unfinished predictions is not waited for."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- publishing --------------------------------------------------------------------

    def publish(
        self,
        prediction_id: str,
        target: WebhookTarget,
        event: str,
        payload: Mapping[str, Any],
    ) -> None:
        """Record ``event`` for ``prediction_id``; ``payload`` is the prediction's JSON as
        GET shows it now. Returns at once; a throttled send carries the latest payload."""
        if event not in ALL_EVENTS:
            raise ValueError(f"unknown webhook event {event!r}")
        if self._client is None:
            raise RuntimeError("Outbox.start() has not been awaited")
        key = (prediction_id, target.url)
        if key in self._completed:
            return  # nothing after completed, not even a newer snapshot for its body
        if event == "completed":
            self._completed.add(key)
            if event in target.events:
                # Into the table now, not when its turn comes: a stop while an earlier
                # delivery is still in flight must not lose it.
                delivery = Delivery(
                    id=delivery_id(prediction_id, target.url, event),
                    prediction_id=prediction_id,
                    url=target.url,
                    secret=target.secret,
                    event=event,
                    body=json_bytes(payload),
                    created_at=self._clock.time(),
                    next_attempt_at=self._clock.time(),
                )
                self._finals[key] = (delivery, asyncio.create_task(self._save(delivery, None)))
        self._latest[key] = dict(payload)
        webhook = self._webhooks.get(key)
        if webhook is None:
            sender = _CheckedSender(
                allow_private=self._allow_private,
                user_agent=self._user_agent,
                signer=StandardWebhooksSigner((target.secret,)),
                client=self._client,
            )

            async def final(message: WebhookMessage) -> None:
                # the delivery recorded by publish(), same state as ``message``
                delivery, saved = self._finals.pop(key)
                await saved
                await self._deliver_durably(delivery)

            webhook = PredictionWebhook(
                sender,
                target.url,
                lambda: self._latest.get(key, {}),
                events=target.events,
                throttle_interval=self._interval,
                final_delivery=final,
            )
            self._webhooks[key] = webhook
        webhook.notify(event)
        if event == "completed":
            self._track(self._close(key, webhook))

    async def recorded(self, prediction_id: str, url: str) -> None:
        """Return once the ``completed`` published for ``prediction_id`` to ``url`` is in
        the table (at once when none is waiting to be written)."""
        final = self._finals.get((prediction_id, url))
        if final is not None:
            await asyncio.shield(final[1])

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self, key: tuple[str, str], webhook: PredictionWebhook) -> None:
        try:
            await webhook.wait_closed()
        finally:
            self._webhooks.pop(key, None)
            self._latest.pop(key, None)
            self._completed.discard(key)
            self._finals.pop(key, None)

    # --- durable delivery of ``completed`` ------------------------------------------

    async def _deliver_durably(self, delivery: Delivery) -> None:
        assert self._client is not None
        sender = _CheckedSender(
            allow_private=self._allow_private,
            user_agent=self._user_agent,
            signer=StandardWebhooksSigner((delivery.secret,)),
            client=self._client,
        )
        message = WebhookMessage(delivery.url, delivery.event, delivery.body, id=delivery.id)
        if delivery.attempts == 0 and delivery.next_attempt_at == 0.0:
            delivery.next_attempt_at = self._clock.time()
            await self._save(delivery, None)
        while True:
            pause = delivery.next_attempt_at - self._clock.time()
            if pause > 0:
                await self._clock.sleep(pause)
            status = await sender.attempt(message)
            delivery.attempts += 1
            if status is not None and 200 <= status < 300:
                await self._delete(delivery)
                return
            error = "network error" if status is None else f"HTTP {status}"
            if status == _REFUSED or delivery.attempts > len(self._delays):
                log.warning(
                    "giving up on webhook %s for prediction %s after %d attempts: %s",
                    delivery.id,
                    delivery.prediction_id,
                    delivery.attempts,
                    "address refused" if status == _REFUSED else error,
                )
                await self._delete(delivery)
                return
            delivery.next_attempt_at = self._clock.time() + self._delays[delivery.attempts - 1]
            await self._save(delivery, error)

    # --- persistence ---------------------------------------------------------------------

    async def _save(self, delivery: Delivery, error: str | None) -> None:
        if self._engine is None:
            return
        engine = self._engine
        row = {
            "id": delivery.id,
            "prediction_id": delivery.prediction_id,
            "url": delivery.url,
            "secret": delivery.secret,
            "event": delivery.event,
            "body": delivery.body,
            "attempts": delivery.attempts,
            "next_attempt_at": delivery.next_attempt_at,
            "created_at": delivery.created_at,
            "last_error": error,
        }

        def save() -> None:
            with engine.begin() as conn:
                updated = conn.execute(
                    deliveries_table.update()
                    .where(deliveries_table.c.id == delivery.id)
                    .values(
                        attempts=delivery.attempts,
                        next_attempt_at=delivery.next_attempt_at,
                        last_error=error,
                    )
                ).rowcount
                if not updated:
                    conn.execute(deliveries_table.insert().values(**row))

        await asyncio.to_thread(save)

    async def _delete(self, delivery: Delivery) -> None:
        if self._engine is None:
            return
        engine = self._engine

        def delete() -> None:
            with engine.begin() as conn:
                conn.execute(deliveries_table.delete().where(deliveries_table.c.id == delivery.id))

        await asyncio.to_thread(delete)

    async def _load_pending(self) -> list[Delivery]:
        if self._engine is None:
            return []
        engine = self._engine

        def load() -> list[Delivery]:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(deliveries_table).order_by(
                        deliveries_table.c.created_at, deliveries_table.c.id
                    )
                ).all()
            return [
                Delivery(
                    id=r.id,
                    prediction_id=r.prediction_id,
                    url=r.url,
                    secret=r.secret,
                    event=r.event,
                    body=bytes(r.body),
                    attempts=r.attempts,
                    next_attempt_at=r.next_attempt_at,
                    created_at=r.created_at,
                )
                for r in rows
            ]

        return await asyncio.to_thread(load)


def _user_agent() -> str:
    try:
        return f"vendo/{importlib.metadata.version('vendo')}"
    except importlib.metadata.PackageNotFoundError:
        return "vendo"
