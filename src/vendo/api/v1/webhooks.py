"""Relays prediction events from the bus to the webhook outbox.

Each bus event of a prediction that has a ``webhook`` becomes one outbox event
(``start``, ``output``, ``logs``, ``completed``) carrying the prediction's JSON as GET
shows it at that moment. One task handles the events in order, so a prediction's
deliveries are handed over in the order they happened; filtering, throttling, signing
and retries are the outbox's (``vendo.webhooks.outbox``).

Exactly one terminal message per prediction: a message other than ``completed`` never
shows a terminal status (the row may have ended by the time the relay reads it), and
nothing is relayed for a prediction marked ``webhook_done``. Once the outbox has
``completed`` in its table, the prediction is marked ``webhook_done``. A finished
prediction with a webhook and no mark is owed its ``completed``: the server stopped
between the two, or a restart finished a prediction that was running (``interrupted``).
:meth:`WebhookRelay.resume_owed`, run at start-up once the scheduler has recovered its
jobs, sends those (with the same ``webhook-id``, see ``vendo.webhooks.outbox``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from anyio import to_thread

from vendo.api.v1.context import Platform
from vendo.api.v1.render import is_iterator, prediction_json
from vendo.queue.events import Event
from vendo.status import WEBHOOK_EVENTS
from vendo.store import PROCESSING, TERMINAL

__all__ = ["WebhookRelay"]

log = logging.getLogger(__name__)

_EVENTS = WEBHOOK_EVENTS
_UNSET = object()


class WebhookRelay:
    """``await start()``, then it follows ``platform.bus``; ``await stop()`` at the end."""

    def __init__(self, platform: Platform, outbox: Any) -> None:
        self.platform = platform
        self.outbox = outbox
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._targets: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.outbox.start()
        self.platform.bus.add_listener(self._on_event)
        self.platform.webhook_relay = self
        self._task = asyncio.create_task(self._run(), name="vendo-webhook-relay")

    async def resume_owed(self) -> int:
        """Send the ``completed`` webhooks owed by an earlier run of the server (see the
        module's doc); returns how many. Those the outbox resumed from its own table
        are only marked."""
        p = self.platform
        owed = await to_thread.run_sync(p.store.predictions.owed_webhooks)
        for prediction_id in owed:
            if prediction_id in self.outbox.resumed:
                await to_thread.run_sync(p.store.predictions.mark_webhook_done, prediction_id)
                continue
            log.info("sending the completed webhook prediction %s is owed", prediction_id)
            try:
                await self._relay(prediction_id, "completed")
            except Exception:
                log.exception("owed webhook of prediction %s not relayed", prediction_id)
        return len(owed)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.outbox.stop()

    def no_webhook(self, prediction_id: str) -> None:
        """The prediction was created without a webhook: its events need no database
        read to find that out (create calls this before the prediction is queued)."""
        self._targets[prediction_id] = None

    def _on_event(self, prediction_id: str, event: Event) -> None:
        kind = _EVENTS.get(event.event)
        if kind is None:
            return
        if prediction_id in self._targets and self._targets[prediction_id] is None:
            # known to have no webhook: not even a wake-up of the relay's task
            if kind == "completed":
                del self._targets[prediction_id]
            return
        self._queue.put_nowait((prediction_id, kind))

    async def _run(self) -> None:
        while True:
            prediction_id, kind = await self._queue.get()
            try:
                await self._relay(prediction_id, kind)
            except Exception:
                log.exception("webhook %s of prediction %s not relayed", kind, prediction_id)

    async def _relay(self, prediction_id: str, kind: str) -> None:
        from vendo.webhooks.outbox import ALL_EVENTS, WebhookTarget

        p = self.platform
        target = self._targets.get(prediction_id, _UNSET)
        if target is None:  # known to have no webhook: no database read per token
            if kind == "completed":
                self._targets.pop(prediction_id, None)
            return
        row = await to_thread.run_sync(p.store.predictions.get, prediction_id)
        if row is None:
            return
        if row.webhook_done:
            # its ``completed`` is in the outbox already: a repeated ``done`` (or an event
            # that arrives after it) must not make a second terminal message
            self._targets.pop(prediction_id, None)
            return
        if target is _UNSET:
            target = None
            if row.webhook:
                secret = await to_thread.run_sync(p.store.accounts.webhook_secret, row.owner_id)
                owner = await to_thread.run_sync(p.store.accounts.user, row.owner_id)
                events = frozenset(row.webhook_events_filter or ALL_EVENTS)
                name = owner.username if owner is not None else ""
                target = (WebhookTarget(row.webhook, secret, events), name)
            self._targets[prediction_id] = target
        if kind == "completed":
            self._targets.pop(prediction_id, None)
        if target is None:
            return
        webhook_target, owner_name = target
        version = await to_thread.run_sync(p.store.catalog.version, row.version_id)
        base = p.settings.public_url or row.base_url or ""
        payload = prediction_json(
            p,
            base.rstrip("/"),
            row,
            owner=owner_name,
            streamable=is_iterator(version.openapi_schema if version else None),
        )
        if kind != "completed" and payload["status"] in TERMINAL:
            # The row is read when the relay gets to the event, and a quick prediction
            # may have ended by then. A receiver tells a message's event only by its body:
            # a ``start`` showing the end would be a second terminal message.
            payload.update(status=PROCESSING, completed_at=None, error=None, metrics=None)
        self.outbox.publish(prediction_id, webhook_target, kind, payload)
        if kind == "completed":
            await self.outbox.recorded(prediction_id, webhook_target.url)
            await to_thread.run_sync(p.store.predictions.mark_webhook_done, prediction_id)
