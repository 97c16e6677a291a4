"""Events and cancels between the processes that share one PostgreSQL database.

In scaled mode several ``vendo serve`` processes (and, later, agents) share a database
and a bucket; a prediction runs in one of them, but a client may follow it (SSE,
``Prefer: wait``) or cancel it through any other. :class:`ClusterRelay` carries both
over PostgreSQL's ``LISTEN``/``NOTIFY``, so no extra service is needed:

- every event the process publishes on its own :class:`~vendo.queue.events.EventBus`
  goes out as a notification, and every other process publishes it on its bus as
  *relayed* (its listeners, the webhook relay among them, are not told: the process
  that ran the prediction told its own);
- :meth:`ClusterRelay.cancel` asks the process running a prediction to cancel it;
- :meth:`ClusterRelay.job_queued` wakes the schedulers when an API-only server queued a
  job (they also look for jobs queued elsewhere on their own, every tick).

Notifications are delivered in commit order; a message larger than PostgreSQL's 8000
byte payload is sent in parts within one transaction and put back together. A
notification sent while a process is disconnected is lost for it (PostgreSQL keeps none
for absent listeners): a stream that misses its ``done`` ends at the client's reconnect,
which reads the finished prediction from the store. The connections reconnect on their
own after a database restart. The channel is named after the database schema, so
deployments (and test runs) in separate schemas of one database do not hear each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

from vendo.queue.events import Event, EventBus

__all__ = ["ClusterRelay", "conninfo"]

log = logging.getLogger(__name__)

_PART = 7000  # characters of JSON (ASCII) per notification, under the 8000 byte limit
_RETRY = (0.2, 0.5, 1.0, 2.0, 5.0)  # seconds between reconnect attempts, then 5 s
_CHECK = 30.0  # seconds of silence after which the listening connection is checked
CancelHandler = Callable[[str], Coroutine[Any, Any, None]]


def conninfo(sqlalchemy_url: str) -> str:
    """A libpq URL from a SQLAlchemy one (``postgresql+psycopg://`` -> ``postgresql://``)."""
    scheme, sep, rest = sqlalchemy_url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


class ClusterRelay:
    """Relays one process's bus events and cancels to the others (see module doc)."""

    def __init__(
        self,
        bus: EventBus,
        url: str,
        on_cancel: CancelHandler | None = None,
        on_job: Callable[[str], None] | None = None,
    ) -> None:
        self.bus = bus
        self.url = conninfo(url)
        self.on_cancel = on_cancel
        self.on_job = on_job
        self.origin = secrets.token_hex(6)  # this process: its own messages are skipped
        self.channel = "vendo"
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._seq = 0
        self._parts: dict[tuple[str, int], list[str]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()

    async def start(self) -> None:
        """Listen, and relay this process's events from now on. Returns once listening
        (or after a first failed attempt, which keeps retrying in the background)."""
        self.channel = await self._channel_name()
        self.bus.add_listener(self._forward)
        self._tasks = [
            asyncio.create_task(self._listen_forever()),
            asyncio.create_task(self._send_forever()),
        ]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 10)

    async def stop(self) -> None:
        """Send what is pending (briefly), then close both connections."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._outbox.join(), 2)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def cancel(self, prediction_id: str) -> None:
        """Ask the process running ``prediction_id`` to cancel it."""
        self._send({"k": "cancel", "p": prediction_id})

    def job_queued(self, version_id: str) -> None:
        """Tell the schedulers of the other processes that a job of ``version_id`` waits
        (they would find it on their next look anyway; this saves them the wait)."""
        self._send({"k": "job", "v": version_id})

    # --- sending ----------------------------------------------------------------------

    def _forward(self, prediction_id: str, event: Event) -> None:
        # a bus listener: must return at once
        self._send({"k": "event", "p": prediction_id, "e": event.event, "d": event.data})

    def _send(self, message: dict[str, Any]) -> None:
        text = json.dumps(message, default=str)  # ASCII: one character, one byte
        self._seq += 1
        parts = [text[i : i + _PART] for i in range(0, len(text), _PART)] or [""]
        for n, part in enumerate(parts):
            self._outbox.put_nowait(f"{self.origin} {self._seq} {n} {len(parts)} {part}")

    async def _send_forever(self) -> None:
        import psycopg

        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            while True:
                batch = [await self._outbox.get()]
                while not self._outbox.empty():
                    batch.append(self._outbox.get_nowait())
                for attempt in range(2):  # once more on a fresh connection
                    try:
                        if conn is None or conn.closed:
                            conn = await self._connect(autocommit=False)
                        async with conn.transaction(), conn.cursor() as cur:
                            await cur.executemany(
                                "SELECT pg_notify(%s, %s)", [(self.channel, m) for m in batch]
                            )
                        break
                    except psycopg.Error as exc:
                        log.warning("cluster relay: cannot notify (%s); reconnecting", exc)
                        if conn is not None:
                            await conn.close()
                        conn = None
                        if attempt:
                            log.error("cluster relay: %d messages lost", len(batch))
                for _ in batch:
                    self._outbox.task_done()
        finally:
            if conn is not None:
                await conn.close()

    # --- receiving --------------------------------------------------------------------

    async def _listen_forever(self) -> None:
        import psycopg
        from psycopg import sql

        failures = 0
        while True:
            try:
                conn = await self._connect(autocommit=True)
            except psycopg.Error as exc:
                delay = _RETRY[min(failures, len(_RETRY) - 1)]
                failures += 1
                log.warning("cluster relay: cannot listen (%s); retrying in %ss", exc, delay)
                await asyncio.sleep(delay)
                continue
            try:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                failures = 0
                self._listening.set()
                while True:
                    async for note in conn.notifies(timeout=_CHECK):
                        self._receive(note.payload)
                    await conn.execute("SELECT 1")  # a silent connection may be dead
            except psycopg.Error as exc:
                log.warning("cluster relay: connection lost (%s); reconnecting", exc)
            finally:
                await conn.close()

    def _receive(self, payload: str) -> None:
        origin, seq, n, total, part = (payload.split(" ", 4) + [""] * 5)[:5]
        if origin == self.origin or not (seq.isdigit() and n.isdigit() and total.isdigit()):
            return
        key = (origin, int(seq))
        parts = self._parts.setdefault(key, [])
        parts.append(part)
        if len(parts) < int(total):
            return
        del self._parts[key]
        try:
            message = json.loads("".join(parts))
            self._dispatch(message)
        except Exception:
            log.exception("cluster relay: bad message from %s", origin)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, prediction_id = message.get("k"), str(message.get("p"))
        if kind == "event":
            self.bus.publish(prediction_id, str(message["e"]), message.get("d"), relayed=True)
        elif kind == "job" and self.on_job is not None:
            self.on_job(str(message.get("v")))
        elif kind == "cancel" and self.on_cancel is not None:
            task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
                self.on_cancel(prediction_id)
            )
            task.add_done_callback(_log_failure)

    # --- connections ------------------------------------------------------------------

    async def _connect(self, *, autocommit: bool) -> Any:
        import psycopg

        return await psycopg.AsyncConnection.connect(
            self.url, autocommit=autocommit, connect_timeout=5
        )

    async def _channel_name(self) -> str:
        """``vendo`` in the ``public`` schema, ``vendo_<schema>`` in any other."""
        import psycopg

        try:
            conn = await self._connect(autocommit=True)
        except psycopg.Error:
            return self.channel
        try:
            cur = await conn.execute("SELECT current_schema()")
            row = await cur.fetchone()
        finally:
            await conn.close()
        schema = str(row[0]) if row and row[0] else "public"
        return "vendo" if schema == "public" else f"vendo_{schema}"[:63]


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("cluster relay: a cancel failed", exc_info=task.exception())
