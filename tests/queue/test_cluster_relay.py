"""Events and cancels between processes on one PostgreSQL database
(``vendo.queue.cluster``): two relays, each with its own bus, as two servers have."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from support import until_async
from vendo.queue.cluster import ClusterRelay, conninfo
from vendo.queue.events import Event, EventBus

pytestmark = pytest.mark.postgres


class Node:
    def __init__(self, url: str) -> None:
        self.bus = EventBus()
        self.heard: list[tuple[str, str]] = []  # what this node's listeners were told
        self.canceled: list[str] = []
        self.jobs: list[str] = []
        self.bus.add_listener(lambda pid, event: self.heard.append((pid, event.event)))

        async def cancel(prediction_id: str) -> None:
            self.canceled.append(prediction_id)

        self.relay = ClusterRelay(self.bus, url, on_cancel=cancel, on_job=self.jobs.append)


@pytest.fixture
async def nodes(postgres_url: str) -> AsyncIterator[tuple[Node, Node]]:
    a, b = Node(postgres_url), Node(postgres_url)
    for node in (a, b):
        node.bus.bind(asyncio.get_running_loop())
        await node.relay.start()
    try:
        yield a, b
    finally:
        for node in (a, b):
            await node.relay.stop()


async def _events(bus: EventBus, prediction_id: str) -> list[Event]:
    return [e async for e in bus.subscribe(prediction_id)]


def test_conninfo_is_libpq_form() -> None:
    assert conninfo("postgresql+psycopg://u@h:5432/db?x=1") == "postgresql://u@h:5432/db?x=1"


async def test_events_reach_the_other_process_whole_and_in_order(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    big = "x" * 50_000  # several notifications' worth: sent in parts, put back together
    a.bus.publish("p1", "logs", "hello")
    a.bus.publish("p1", "output", {"text": big, "n": [1, 2]})
    a.bus.publish("p1", "done", {})
    got = await asyncio.wait_for(_events(b.bus, "p1"), 30)
    assert [(e.id, e.event) for e in got] == [(1, "logs"), (2, "output"), (3, "done")]
    assert got[1].data == {"text": big, "n": [1, 2]}
    # relayed events are not told to b's listeners (a's told its own), nor sent back
    assert b.heard == [] and a.heard == [("p1", "logs"), ("p1", "output"), ("p1", "done")]
    assert await b.bus.wait_done("p1", 1)


async def test_cancels_and_jobs_reach_the_others_only(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await a.relay.cancel("p2")
    a.relay.job_queued("v1")
    await until_async(lambda: b.canceled == ["p2"] and b.jobs == ["v1"])
    assert a.canceled == [] and a.jobs == []
