"""Runner instances and the time they spend in each state, for billing and metrics.

An *instance* is one runner child as a pool keeps it (restarts after a crash included),
from its cold start to its stop. Its pool reports each change of state to an
:class:`InstanceObserver`, one call per transition::

    setting_up -> idle <-> active -> ... -> stopped

``active`` means at least one prediction is in the child. :class:`UsageMeter` is the
observer that bills: it adds up each instance's seconds per state in memory (a
transition costs two dict updates on the event loop, no I/O) and writes them to the
store every ``flush_interval`` seconds, and soon after an instance stops, as one row per
instance and state (:meth:`vendo.store.usage.Usage.record`). Durations come from the
monotonic clock; wall times are the monotonic time shifted by the wall clock read once,
so that a clock step never makes an interval negative.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

__all__ = [
    "Instance",
    "InstanceObserver",
    "InstanceState",
    "NoObserver",
    "PoolIdentity",
    "UsageMeter",
    "new_instance_id",
    "runner_state",
]

log = logging.getLogger(__name__)


class InstanceState(str, enum.Enum):
    SETTING_UP = "setting_up"
    IDLE = "idle"
    ACTIVE = "active"
    STOPPED = "stopped"


@dataclass(frozen=True)
class PoolIdentity:
    """What every instance of one pool shares: who pays for it and on what hardware."""

    pool: str  # "version:<id>", or "deployment:<owner>/<name>"
    hardware: str  # the SKU
    owner_id: int  # the account the instances belong to
    model: str  # "owner/name"
    version_id: str
    deployment: str | None = None  # "owner/name"
    # a public model's shared pool: its instances' time is not billed (its runs are)
    shared: bool = False


@dataclass(frozen=True)
class Instance:
    id: str
    pool: PoolIdentity


_ids = itertools.count(1)


def new_instance_id() -> str:
    """Unique among the processes sharing a database: host pid, start time, counter."""
    return f"{os.getpid():x}-{time.time_ns() // 1_000_000:x}-{next(_ids)}"


def runner_state(starting: bool, alive: bool, busy: bool) -> InstanceState:
    """The state of a runner child that is starting (its setup, or a restart after a
    crash), has a live child, and has predictions in it."""
    if starting:
        return InstanceState.SETTING_UP
    if not alive:
        return InstanceState.STOPPED
    return InstanceState.ACTIVE if busy else InstanceState.IDLE


class InstanceObserver(Protocol):
    def transition(self, instance: Instance, state: InstanceState) -> None:
        """``instance`` is in ``state`` from now on (called on the event loop)."""


class NoObserver:
    def transition(self, instance: Instance, state: InstanceState) -> None:
        return None


@dataclass
class _Open:
    instance: Instance
    state: InstanceState
    since: float  # monotonic


@dataclass
class _Pending:
    instance: Instance
    state: InstanceState
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

    def transition(self, instance: Instance, state: InstanceState) -> None:
        now = self._clock()
        current = self._open.pop(instance.id, None)
        if current is not None:
            self._add(current, now)
        if state is InstanceState.STOPPED:
            self._wake.set()  # a stopped instance is written soon: reports see it whole
        else:
            self._open[instance.id] = _Open(instance, state, now)

    def _add(self, interval: _Open, end: float) -> None:
        if interval.state is InstanceState.STOPPED:
            return
        key = (interval.instance.id, interval.state)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(
                interval.instance, interval.state, interval.since, end
            )
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
            pool = p.instance.pool
            rows.append(
                {
                    "instance_id": p.instance.id,
                    "pool": pool.pool,
                    "hardware": pool.hardware,
                    "owner_id": pool.owner_id,
                    "model": pool.model,
                    "version_id": pool.version_id,
                    "deployment": pool.deployment,
                    "shared": pool.shared,
                    "state": p.state.value,
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
