"""A clock that moves only when a test says so: time-based behaviour (expiry, retry
schedules) is tested without waiting for it."""

from __future__ import annotations

import asyncio
import types

__all__ = ["ManualClock"]


class ManualClock:
    """Stands in for the ``time`` module (``monotonic``/``time``) of a module under test
    (``monkeypatch.setattr(module, "time", clock.module)``) or for an injected clock
    with ``time()`` and ``async sleep()``, which advances it at once."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.module = types.SimpleNamespace(monotonic=self.time, time=self.time)

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)  # still a scheduling point, as a real sleep is
