from __future__ import annotations

import asyncio

from vendo.queue import EventBus


async def test_late_subscriber_gets_replay_then_live_events() -> None:
    bus = EventBus()
    bus.publish("p", "logs", "a")
    seen: list[tuple[int, str]] = []

    async def reader() -> None:
        async for e in bus.subscribe("p"):
            seen.append((e.id, e.event))

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.01)
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
