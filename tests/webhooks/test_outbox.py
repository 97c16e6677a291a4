"""The outbox against a real HTTP receiver on loopback that checks every signature with
the reference ``standardwebhooks`` library."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

import support
from support import free_port, until_async
from vendo.webhooks.outbox import (
    Outbox,
    WebhookTarget,
    WebhookURLError,
    check_webhook_url,
    deliveries_table,
    retry_delays,
)
from vendo.webhooks.sender import parse_events_filter
from vendo.webhooks.signing import new_secret

SECRET = new_secret()


@dataclass
class Received:
    event: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


class Receiver(support.Receiver):
    """The shared receiver, reading each accepted delivery as the outbox's payload with
    its signature checked."""

    @property
    def accepted(self) -> list[Received]:
        """Every delivery answered 200, verified (raises if one is forged)."""
        return [
            Received(payload["_event"], payload, dict(r["headers"]), r["at"])
            for r in self.received()
            if r["status"] == 200
            for payload in [Webhook(SECRET).verify(r["body"], r["headers"])]
        ]

    @property
    def attempts(self) -> list[dict[str, str]]:
        """The headers of every request, answered or refused."""
        return [dict(r["headers"]) for r in self.received()]

    def events(self) -> list[str]:
        return [r.event for r in self.accepted]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def payload(event: str, **extra: Any) -> dict[str, Any]:
    return {"id": "p1", "_event": event, **extra}


class FastClock:
    """Virtual time: sleeping moves the clock instead of waiting."""

    def __init__(self) -> None:
        self.start = self.now = time.time()
        self.hooks: list[tuple[float, Any]] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        for at, hook in list(self.hooks):
            if self.now >= at:
                self.hooks.remove((at, hook))
                hook()
        await asyncio.sleep(0)


async def test_events_arrive_signed_and_in_order(receiver: Receiver) -> None:
    outbox = Outbox(throttle_interval=0.2)
    await outbox.start()
    target = WebhookTarget(receiver.url, SECRET)
    outbox.publish("p1", target, "start", payload("start", status="processing"))
    await until_async(lambda: len(receiver.accepted) == 1)
    outbox.publish("p1", target, "output", payload("output", output=[0]))
    await until_async(lambda: len(receiver.accepted) == 2)
    for n in range(2, 6):
        outbox.publish("p1", target, "output", payload("output", output=list(range(n))))
    await until_async(lambda: len(receiver.accepted) == 3)
    # the throttle window is open again, but completed, published right after, wins
    outbox.publish("p1", target, "logs", payload("logs", logs="a\nb\n"))
    outbox.publish("p1", target, "completed", payload("completed", status="succeeded"))
    outbox.publish("p1", target, "output", payload("output", output=["late"]))
    await outbox.drain()
    await outbox.stop()

    # first output at once, the burst coalesced into one trailing send of the latest
    # state; the pending logs is superseded by completed, and nothing follows completed
    assert receiver.events() == ["start", "output", "output", "completed"]
    assert receiver.accepted[1].body["output"] == [0]
    assert receiver.accepted[2].body["output"] == [0, 1, 2, 3, 4]
    ids = {r.headers["webhook-id"] for r in receiver.accepted}
    assert len(ids) == 4
    assert all(r.headers["content-type"] == "application/json" for r in receiver.accepted)


class RecordingTransport(httpx.AsyncHTTPTransport):
    """The real HTTP transport, noting when each request starts going out."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(time.monotonic())
        return await super().handle_async_request(request)


async def test_progress_is_throttled_with_trailing_send(receiver: Receiver) -> None:
    transport = RecordingTransport()
    outbox = Outbox(throttle_interval=0.2, transport=transport)
    await outbox.start()
    target = WebhookTarget(receiver.url, SECRET)
    started = time.monotonic()
    for n in range(30):  # 30 updates over ~0.9 s
        outbox.publish("p1", target, "logs", payload("logs", logs="x" * (n + 1)))
        await asyncio.sleep(0.03)  # not a wait: the rate of updates under test
    await until_async(lambda: any(r.body["logs"] == "x" * 30 for r in receiver.accepted))
    elapsed = time.monotonic() - started
    await outbox.stop()
    sent = transport.sent
    # 0.2 s apart, less what the event loop's timers may be late by under load
    assert all(b - a >= 0.15 for a, b in zip(sent, sent[1:], strict=False)), sent
    assert 2 <= len(sent) <= elapsed / 0.2 + 2
    assert receiver.accepted[-1].body["logs"] == "x" * 30  # the last state always goes out


async def test_filter_is_honoured(receiver: Receiver) -> None:
    outbox = Outbox(throttle_interval=0.0)
    await outbox.start()
    target = WebhookTarget(receiver.url, SECRET, parse_events_filter(["start", "completed"]))
    for event in ("start", "output", "logs"):
        outbox.publish("p1", target, event, payload(event))
        await asyncio.sleep(0.05)  # not a wait: events apart, as a run makes them
    outbox.publish("p1", target, "completed", payload("completed"))
    await outbox.drain()
    await outbox.stop()
    assert receiver.events() == ["start", "completed"]


async def test_completed_is_retried_with_a_stable_id(receiver: Receiver) -> None:
    receiver.statuses = [500, 503, 429]
    outbox = Outbox(delays=[0.05, 0.05, 0.05, 0.05])
    await outbox.start()
    outbox.publish("p1", WebhookTarget(receiver.url, SECRET), "completed", payload("completed"))
    await outbox.drain()
    await outbox.stop()
    assert len(receiver.attempts) == 4
    assert len({a["webhook-id"] for a in receiver.attempts}) == 1
    assert receiver.events() == ["completed"]


async def test_intermediate_events_are_not_retried(receiver: Receiver) -> None:
    receiver.statuses = [500]
    outbox = Outbox(delays=[0.05])
    await outbox.start()
    target = WebhookTarget(receiver.url, SECRET)
    outbox.publish("p1", target, "start", payload("start"))
    await until_async(lambda: receiver.attempts)
    # one prediction's deliveries go out one at a time, in order: once its completed is
    # delivered, a retry of start would have come before it
    outbox.publish("p1", target, "completed", payload("completed"))
    await outbox.drain()
    await outbox.stop()
    assert [a["webhook-id"] for a in receiver.attempts][1:] == [
        r.headers["webhook-id"] for r in receiver.accepted
    ]
    assert len(receiver.attempts) == 2 and receiver.events() == ["completed"]


async def test_gives_up_after_the_last_attempt(receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    outbox = Outbox(delays=[0.02, 0.02])
    await outbox.start()
    outbox.publish("p1", WebhookTarget(receiver.url, SECRET), "completed", payload("completed"))
    await outbox.drain()
    await outbox.stop()
    assert len(receiver.attempts) == 3


async def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.statuses = [302]
    outbox = Outbox(delays=[0.05])
    await outbox.start()
    outbox.publish("p1", WebhookTarget(receiver.url, SECRET), "completed", payload("completed"))
    await outbox.drain()
    await outbox.stop()
    # the 302 counted as a failure (its Location points at a closed port) and was retried
    assert len(receiver.attempts) == 2
    assert receiver.events() == ["completed"]


async def test_slow_receiver_times_out_and_is_retried(receiver: Receiver) -> None:
    receiver.delay = 1.0
    outbox = Outbox(timeout=0.3, delays=[0.05])
    await outbox.start()
    outbox.publish("p1", WebhookTarget(receiver.url, SECRET), "completed", payload("completed"))
    started = time.monotonic()
    await outbox.drain()
    assert time.monotonic() - started < 1.5
    await outbox.stop()
    assert len(receiver.attempts) == 2


def test_default_schedule_ends_about_a_minute_after_completion() -> None:
    delays = retry_delays(6)
    assert len(delays) == 5
    assert delays == sorted(delays)
    assert sum(delays) == pytest.approx(60.0)
    assert retry_delays(1) == []


async def test_receiver_down_for_30_seconds_default_schedule() -> None:
    """Virtual time: the real receiver is closed for the first 30 s after completion."""
    receiver = Receiver(port=free_port())
    clock = FastClock()
    clock.hooks.append((clock.now + 30.0, receiver.up))
    outbox = Outbox(clock=clock, delays=retry_delays(6))
    await outbox.start()
    try:
        outbox.publish("p1", WebhookTarget(receiver.url, SECRET), "completed", payload("completed"))
        await asyncio.wait_for(outbox.drain(), 10)
    finally:
        await outbox.stop()
        receiver.down()
    assert receiver.events() == ["completed"]
    assert 30.0 <= clock.now - clock.start <= 62.0


async def test_receiver_down_then_back_in_real_time(caplog: pytest.LogCaptureFixture) -> None:
    receiver = Receiver(port=free_port())
    outbox = Outbox(delays=[0.2, 0.4, 0.8, 1.6])
    await outbox.start()
    outbox.publish("p1", WebhookTarget(receiver.url, SECRET), "completed", payload("completed"))
    # the first try and the first retry fail while nothing listens
    await until_async(
        lambda: sum("failed" in r.getMessage() for r in caplog.records) >= 2,
        what="two failed attempts",
    )
    assert receiver.accepted == []
    receiver.up()
    try:
        await asyncio.wait_for(outbox.drain(), 10)
    finally:
        await outbox.stop()
        receiver.down()
    assert receiver.events() == ["completed"]


def _engine(path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}")
    deliveries_table.metadata.create_all(engine)
    return engine


def _pending(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(deliveries_table)).all())


async def test_pending_delivery_survives_a_restart(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "vendo.db")
    receiver = Receiver(port=free_port())  # down
    first = Outbox(engine, delays=[0.3, 0.3, 0.3])
    await first.start()
    first.publish("p1", WebhookTarget(receiver.url, SECRET), "completed", payload("completed", n=1))
    await until_async(lambda: [r for r in _pending(engine) if r.attempts == 1])
    await first.stop()  # the server goes away between two attempts
    (row,) = _pending(engine)
    assert row.attempts == 1 and row.last_error

    receiver.up()
    try:
        second = Outbox(engine, delays=[0.3, 0.3, 0.3])
        await second.start()
        await asyncio.wait_for(second.drain(), 10)
        await second.stop()
    finally:
        receiver.down()
    assert receiver.events() == ["completed"]
    assert receiver.accepted[0].headers["webhook-id"] == row.id
    assert receiver.accepted[0].body["n"] == 1
    assert _pending(engine) == []
    engine.dispose()


async def test_delivered_webhook_leaves_no_row(tmp_path: Path, receiver: Receiver) -> None:
    engine = _engine(tmp_path / "vendo.db")
    outbox = Outbox(engine)
    await outbox.start()
    outbox.publish("p1", WebhookTarget(receiver.url, SECRET), "completed", payload("completed"))
    await outbox.drain()
    await outbox.stop()
    assert receiver.events() == ["completed"]
    assert _pending(engine) == []
    engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://100.100.100.200/",
        "ftp://example.com/hook",
        "/relative",
        "http://user:pw@example.com/",
    ],
)
def test_refused_webhook_urls(url: str) -> None:
    with pytest.raises(WebhookURLError):
        check_webhook_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "http://10.1.2.3/", "http://localhost/", "http://[::1]/"]
)
def test_private_urls_follow_the_setting(url: str) -> None:
    check_webhook_url(url, allow_private=True)
    with pytest.raises(WebhookURLError, match="private|localhost"):
        check_webhook_url(url, allow_private=False)


async def test_private_address_refused_at_delivery(receiver: Receiver) -> None:
    # "localhost" passes the create-time check only when private URLs are allowed; at
    # delivery the resolved loopback address is checked again.
    outbox = Outbox(allow_private=False, delays=[0.01])
    await outbox.start()
    url = f"http://localhost:{receiver.port}/hook"
    outbox.publish("p1", WebhookTarget(url, SECRET), "completed", payload("completed"))
    await outbox.drain()
    await outbox.stop()
    assert receiver.attempts == []


def test_body_is_the_payload_json(receiver: Receiver) -> None:
    async def main() -> None:
        outbox = Outbox()
        await outbox.start()
        outbox.publish(
            "p1", WebhookTarget(receiver.url, SECRET), "completed", payload("completed", x="é")
        )
        await outbox.drain()
        await outbox.stop()

    asyncio.run(main())
    assert receiver.accepted[0].body == json.loads(json.dumps(payload("completed", x="é")))


def test_an_output_json_cannot_say_is_null_in_strict_json(receiver: Receiver) -> None:
    """A model's NaN or infinity: the body stays JSON that any receiver parses (JSON.parse
    refuses a NaN token), with null in its place."""

    async def main() -> None:
        outbox = Outbox()
        await outbox.start()
        body = payload("completed", output=[math.nan, math.inf, 1.5])
        outbox.publish("p1", WebhookTarget(receiver.url, SECRET), "completed", body)
        await outbox.drain()
        await outbox.stop()

    def strict(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    asyncio.run(main())
    (delivered,) = [r for r in receiver.received() if r["status"] == 200]
    assert json.loads(delivered["body"], parse_constant=strict)["output"] == [None, None, 1.5]
    assert receiver.accepted[0].body["output"] == [None, None, 1.5]


async def test_completed_is_recorded_before_its_turn(tmp_path: Path, receiver: Receiver) -> None:
    """A stop while an earlier delivery is still in flight keeps the queued completed."""
    engine = _engine(tmp_path / "vendo.db")
    receiver.delay = 1.0  # the start delivery hangs for a second
    first = Outbox(engine)
    await first.start()
    target = WebhookTarget(receiver.url, SECRET)
    first.publish("p1", target, "start", payload("start"))
    first.publish("p1", target, "completed", payload("completed", n=2))
    await until_async(lambda: receiver.attempts)  # start is in flight
    await first.stop()
    (row,) = _pending(engine)
    assert row.attempts == 0

    receiver.delay = 0.0
    second = Outbox(engine)
    await second.start()
    await asyncio.wait_for(second.drain(), 10)
    await second.stop()
    completed = [r for r in receiver.accepted if r.event == "completed"]
    assert len(completed) == 1 and completed[0].body["n"] == 2
    assert completed[0].headers["webhook-id"] == row.id
    assert _pending(engine) == []
    engine.dispose()


async def test_timestamp_is_taken_per_attempt(receiver: Receiver) -> None:
    receiver.statuses = [500, 500]
    outbox = Outbox(delays=[0.6, 0.6])
    await outbox.start()
    outbox.publish("p1", WebhookTarget(receiver.url, SECRET), "completed", payload("completed"))
    await outbox.drain()
    await outbox.stop()
    stamps = [int(a["webhook-timestamp"]) for a in receiver.attempts]
    assert len(stamps) == 3 and stamps == sorted(stamps)
    assert stamps[-1] > stamps[0]  # 1.2 s apart: a new timestamp, the same webhook-id
    assert len({a["webhook-id"] for a in receiver.attempts}) == 1
    assert receiver.events() == ["completed"]  # the last one verified with its own stamp


async def test_a_repeated_completed_keeps_its_id(tmp_path: Path, receiver: Receiver) -> None:
    # A prediction's terminal message has one webhook-id, however often it is made: by a
    # repeated publish once the first is delivered, or by another outbox (a restart) on
    # the same table. The id keys the row, so the table cannot hold it twice either.
    engine = _engine(tmp_path / "vendo.db")
    target = WebhookTarget(receiver.url, SECRET)
    first = Outbox(engine)
    await first.start()
    first.publish("p1", target, "completed", payload("completed", n=1))
    await first.drain()
    first.publish("p1", target, "completed", payload("completed", n=2))
    await first.drain()
    await first.stop()
    down = Receiver(port=free_port())  # never up: the row stays pending
    for n in (3, 4):
        second = Outbox(engine, delays=[60.0])
        await second.start()
        second.publish("p1", WebhookTarget(down.url, SECRET), "completed", payload("completed"))
        second.publish("p1", target, "completed", payload("completed", n=n))
        # delivered, and its row removed: the outbox is done with it
        await until_async(
            lambda n=n: (
                any(r.body["n"] == n for r in receiver.accepted)
                and all(row.url == down.url for row in _pending(engine))
            )
        )
        await second.stop()
    ids = {r.headers["webhook-id"] for r in receiver.accepted}
    assert len(receiver.accepted) >= 2 and len(ids) == 1
    # one pending row per (prediction, url), never a second for the same message
    rows = _pending(engine)
    assert len(rows) == 1 and rows[0].url == down.url
    engine.dispose()
