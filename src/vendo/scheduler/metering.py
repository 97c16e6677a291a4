"""Metering: the time runner instances spend in each state, for billing.

A pool's instances (:mod:`vendo.scheduler.instance`) report every change of state as an
:class:`~vendo.scheduler.instance.InstanceEvent`, one per transition::

    setting_up -> idle <-> active -> ... -> stopped

:class:`UsageMeter` observes them: it adds up each instance's seconds per state in
memory (a transition costs two dict updates on the event loop, no I/O) and writes them
to the store every ``flush_interval`` seconds, and soon after an instance stops, as one
row per instance and state (:meth:`vendo.store.usage.Usage.record`). Durations come from
the monotonic clock; wall times are the monotonic time shifted by the wall clock read
once, so that a clock step never makes an interval negative.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from vendo.scheduler.instance import InstanceEvent, InstanceState

__all__ = ["UsageMeter"]

log = logging.getLogger(__name__)


@dataclass
class _Open:
    event: InstanceEvent
    since: float  # monotonic

    @property
    def state(self) -> InstanceState:
        return self.event.state


@dataclass
class _Pending:
    event: InstanceEvent
    start: float  # monotonic
    end: float
    seconds: float = 0.0


Writer = Callable[[list[dict[str, Any]]], Awaitable[None]]


class UsageMeter:
    """Adds up instance time per state and writes it in batches (see the module)."""

    def __init__(
        self,
        write: Writer,
        flush_interval: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self.flush_interval = flush_interval
        self._clock = clock
        self._wall_offset = time.time() - clock()
        self._open: dict[str, _Open] = {}
        self._pending: dict[tuple[str, InstanceState], _Pending] = {}
        self._retry: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- the observer ---------------------------------------------------------------

    def observe(self, event: InstanceEvent) -> None:
        """The instance is in ``event.state`` from now on (called on the event loop)."""
        now = self._clock()
        current = self._open.get(event.instance_id)
        if current is not None:
            self._add(current, now)
        if event.state is InstanceState.STOPPED:
            self._open.pop(event.instance_id, None)
            self._wake.set()  # a stopped instance is written soon: reports see it whole
        elif current is not None:
            # twice per prediction (busy, then idle): the interval is reused, not remade
            current.event, current.since = event, now
        else:
            self._open[event.instance_id] = _Open(event, now)

    def _add(self, interval: _Open, end: float) -> None:
        if interval.state is InstanceState.STOPPED:
            return
        key = (interval.event.instance_id, interval.state)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(interval.event, interval.since, end)
        pending.end = end
        pending.seconds += max(0.0, end - interval.since)

    # --- writing --------------------------------------------------------------------

    def _wall(self, monotonic: float) -> datetime:
        return datetime.fromtimestamp(self._wall_offset + monotonic, timezone.utc)

    def take(self) -> list[dict[str, Any]]:
        """The rows to write now: what was added up, and the open intervals so far
        (they go on from now)."""
        now = self._clock()
        for interval in self._open.values():
            self._add(interval, now)
            interval.since = now
        rows = self._retry
        self._retry = []
        for p in self._pending.values():
            if p.seconds <= 0:
                continue
            event, release = p.event, p.event.release
            rows.append(
                {
                    "instance_id": event.instance_id,
                    "pool": event.pool,
                    "hardware": event.sku,
                    "owner_id": release.owner_id,
                    "model": release.model,
                    "version_id": release.version_id,
                    "deployment": release.deployment,
                    "shared": release.shared,
                    "state": event.state.value,
                    "started_at": self._wall(p.start),
                    "ended_at": self._wall(p.end),
                    "seconds": p.seconds,
                }
            )
        self._pending.clear()
        return rows

    async def flush(self) -> None:
        rows = self.take()
        if not rows:
            return
        try:
            await self._write(rows)
        except Exception:
            # the database is away: keep the rows for the next flush
            log.exception("could not write %d instance usage rows; retrying later", len(rows))
            self._retry = rows + self._retry

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            await self.flush()

    async def close(self) -> None:
        """Stop the periodic writes and write what is left (open intervals up to now)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
