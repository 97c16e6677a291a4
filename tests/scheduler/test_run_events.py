"""What both engines share of a run (vendo.scheduler.events): runner events handled in
order around output files, and the terminal state a ``done`` decides."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from vendo.runner.protocol import FILE_KEY, RunnerEvent
from vendo.scheduler.events import DROP, InOrder, decide_end
from vendo.scheduler.process import WORKER_EXITED
from vendo.status import PredictionStatus


class Events:
    """An InOrder whose file conversions wait until the test lets them finish."""

    def __init__(self) -> None:
        self.handled: list[tuple[str, Any]] = []
        self.release = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.order = InOrder(self.handle, self.convert, self.spawn, "p1")

    def handle(self, message: RunnerEvent) -> None:
        self.handled.append((message["type"], message.get("value", message.get("data"))))

    async def convert(self, value: Any) -> Any:
        await self.release.wait()
        path = value[FILE_KEY]
        return DROP if path.endswith(".bad") else f"stored:{path}"

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(coro))


async def test_events_after_an_output_file_wait_their_turn() -> None:
    events = Events()
    push = events.order.push
    push({"type": "log", "data": "before"})
    push({"type": "output", "value": {FILE_KEY: "/a.png"}})
    push({"type": "output", "value": "plain"})
    push({"type": "output", "value": {FILE_KEY: "/b.bad"}})
    push({"type": "log", "data": "after"})
    # only what came before the file is handled while it is being stored
    assert events.handled == [("log", "before")]
    assert events.order.busy is not None
    events.release.set()
    await events.order.settled()
    assert events.handled == [
        ("log", "before"),
        ("output", "stored:/a.png"),
        ("output", "plain"),
        ("log", "after"),  # the dropped file output is not handled
    ]
    assert events.order.busy is None
    # and once settled, events are handled at once again
    push({"type": "log", "data": "later"})
    assert events.handled[-1] == ("log", "later")


def test_the_end_a_done_decides() -> None:
    failed, canceled = PredictionStatus.FAILED, PredictionStatus.CANCELED
    assert decide_end({"status": "succeeded", "output": 1}) == (PredictionStatus.SUCCEEDED, None)
    assert decide_end({"status": "failed", "error": "boom"}) == (failed, "boom")
    assert decide_end({"status": "failed"}) == (failed, "prediction failed")
    assert decide_end({"status": "weird"}) == (failed, "prediction failed")
    assert decide_end({"status": "canceled", "error": "x"}) == (canceled, None)
    # canceled means canceled, even when the model swallowed the cancel ...
    assert decide_end({"status": "succeeded"}, canceled=True) == (canceled, None)
    assert decide_end({"status": "failed", "error": "boom"}, canceled=True) == (canceled, None)
    # ... unless its child died first
    died = {"status": "failed", "error": WORKER_EXITED}
    assert decide_end(died, canceled=True) == (failed, WORKER_EXITED)
