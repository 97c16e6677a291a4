from __future__ import annotations

import asyncio

import pytest

from support import ManualClock, until_async
from vendo.queue import EventBus, events


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """The bus's notion of time, moved by the test (``keep`` expiry without waiting)."""
    clock = ManualClock()
    monkeypatch.setattr(events, "time", clock.module)
    return clock


async def test_late_subscriber_gets_replay_then_live_events() -> None:
    bus = EventBus()
    bus.publish("p", "logs", "a")
    seen: list[tuple[int, str]] = []

    async def reader() -> None:
        async for e in bus.subscribe("p"):
            seen.append((e.id, e.event))

    task = asyncio.create_task(reader())
    await until_async(lambda: seen, timeout=5, what="the replay")  # subscribed
    bus.publish("p", "output", "x")
    bus.publish("p", "done", {})
    bus.publish("p", "logs", "ignored after done")
    await asyncio.wait_for(task, 5)
    assert seen == [(1, "logs"), (2, "output"), (3, "done")]


async def test_resume_after_last_event_id() -> None:
    bus = EventBus()
    for i in range(3):
        bus.publish("p", "output", i)
    bus.publish("p", "done", {})
    ids = [e.id async for e in bus.subscribe("p", after=2)]
    assert ids == [3, 4]


async def test_wait_done() -> None:
    bus = EventBus()
    assert not await bus.wait_done("p", 0.05)
    asyncio.get_running_loop().call_later(0.05, bus.publish, "p", "done", {})
    assert await bus.wait_done("p", 5)


async def test_finished_channels_are_dropped_after_keep(clock: ManualClock) -> None:
    bus = EventBus(keep=0.05)
    for key in ("a", "b"):
        bus.publish(key, "done", {})
    clock.advance(0.1)
    bus.publish("c", "logs", "x")  # any publish prunes
    assert bus.history("a") is None and bus.history("b") is None
    assert bus.history("c") is not None


async def test_a_channel_opened_again_outlives_its_old_done(clock: ManualClock) -> None:
    bus = EventBus(keep=0.05)
    bus.publish("a", "done", {})
    clock.advance(0.1)
    bus.publish("x", "logs", "prune")
    bus.publish("a", "logs", "again")  # a new channel under the same id
    clock.advance(0.06)
    bus.publish("a", "done", {})
    bus.publish("x", "logs", "prune")
    assert [e.event for e in bus.history("a") or []] == ["logs", "done"]


async def test_at_most_keep_max_finished_channels_are_kept() -> None:
    bus = EventBus(keep=300, keep_max=3)
    for n in range(5):
        bus.publish(f"p{n}", "done", {})
    bus.publish("running", "start", {})  # publishing prunes
    kept = [f"p{n}" for n in range(5) if bus.history(f"p{n}") is not None]
    assert kept == ["p2", "p3", "p4"]  # the oldest went first
    assert bus.history("running") is not None  # unfinished ones are never dropped
