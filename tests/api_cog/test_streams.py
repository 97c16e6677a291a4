"""Webhooks, SSE and iterator outputs through HTTP (§8, §10 items 11, 22, 23, 24)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx


def parse_sse(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        name, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if name:
            events.append((name, data))
    return events


async def test_webhook_events_and_filter(serve: Any, receiver: Any) -> None:
    served = await serve("srv_iter")
    r = await served.client.post(
        "/predictions",
        json={"input": {"n": 3}, "webhook": receiver.url},
        headers={"Prefer": "respond-async"},
    )
    assert r.status_code == 202
    await asyncio.to_thread(
        receiver.wait_for_bodies, lambda b: b and b[-1]["status"] == "succeeded"
    )
    bodies = receiver.bodies()
    assert bodies[0]["status"] == "processing"  # start
    assert bodies[-1]["output"] == ["item-0", "item-1", "item-2"]
    assert sum(b["status"] == "succeeded" for b in bodies) == 1  # nothing after completed
    headers = receiver.requests[0]["headers"]
    assert headers["User-Agent"].startswith("vendo/")

    receiver.requests.clear()
    r = await served.client.post(
        "/predictions",
        json={"input": {"n": 3}, "webhook": receiver.url, "webhook_events_filter": ["completed"]},
    )
    assert r.json()["status"] == "succeeded"
    await served.webhooks_sent(r.json()["id"])
    assert [b["status"] for b in receiver.bodies()] == ["succeeded"]


async def test_webhook_completed_retried_and_auth(serve: Any, receiver: Any) -> None:
    from vendo.webhooks.sender import RetryPolicy

    served = await serve(
        "srv_echo", webhook_auth_token="tok", webhook_retry=RetryPolicy(attempts=5, base=0.01)
    )
    receiver.statuses = [503, 503]
    r = await served.client.post(
        "/predictions",
        json={"input": {}, "webhook": receiver.url, "webhook_events_filter": ["completed"]},
    )
    assert r.json()["status"] == "succeeded"
    await asyncio.to_thread(receiver.wait_for_bodies, lambda b: len(b) == 3)
    assert all(r["headers"]["Authorization"] == "Bearer tok" for r in receiver.requests)


async def test_webhook_throttled_and_dead_url_keeps_ready(serve: Any, receiver: Any) -> None:
    from vendo.webhooks.sender import RetryPolicy

    # a short retry schedule: shutting down waits for the dead URL's last retry
    served = await serve(
        "srv_iter", throttle_interval=0.3, webhook_retry=RetryPolicy(attempts=2, base=0.01)
    )
    started = time.monotonic()
    r = await served.client.post(
        "/predictions", json={"input": {"n": 20, "delay": 0.05}, "webhook": receiver.url}
    )
    elapsed = time.monotonic() - started
    assert r.json()["status"] == "succeeded"
    await asyncio.to_thread(
        receiver.wait_for_bodies, lambda b: b and b[-1]["status"] == "succeeded"
    )
    # 40 output and log events, but at most one progress webhook per 0.3 s (plus the
    # trailing one), besides start and completed
    progress = len(receiver.requests) - 2
    assert progress <= elapsed / 0.3 + 2
    assert progress < 40
    assert receiver.bodies()[-1]["output"][-1] == "item-19"

    r = await served.client.post(
        "/predictions", json={"input": {"n": 2}, "webhook": "http://127.0.0.1:9/dead"}
    )
    assert r.json()["status"] == "succeeded"
    assert (await served.client.get("/health-check")).json()["status"] == "READY"


async def test_iterator_failure_keeps_partial_output(serve: Any) -> None:
    served = await serve("srv_iter")
    r = await served.client.post("/predictions", json={"input": {"n": 5, "fail_at": 2}})
    body = r.json()
    assert body["status"] == "failed"
    assert body["output"] == ["item-0", "item-1"]
    assert "failed at 2" in body["error"]


async def test_sse_406_without_streaming(serve: Any) -> None:
    served = await serve("srv_iter")
    r = await served.client.post(
        "/predictions", json={"input": {}}, headers={"Accept": "text/event-stream"}
    )
    assert r.status_code == 406


async def test_sse_events_and_put_replay(serve: Any) -> None:
    served = await serve("srv_stream")
    openapi = (await served.client.get("/openapi.json")).json()
    assert openapi["paths"]["/predictions"]["post"]["x-cog-streaming"] is True
    headers = {"Accept": "text/event-stream"}
    async with served.client.stream(
        "PUT", "/predictions/s1", json={"input": {"n": 3}}, headers=headers
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = (await r.aread()).decode()
    events = parse_sse(text)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "completed"
    assert events[0][1] == {"id": "s1", "status": "processing"}
    outputs = [data for name, data in events if name == "output"]
    assert outputs == [{"chunk": f"tok{i} ", "index": i} for i in range(3)]
    assert "log" in names and "metric" in names
    assert events[-1][1]["status"] == "succeeded"
    # reconnect: PUT the same id again replays the stream
    async with served.client.stream(
        "PUT", "/predictions/s1", json={"input": {"n": 3}}, headers=headers
    ) as r:
        replay = parse_sse((await r.aread()).decode())
    assert replay == events


async def test_sse_lost_history_is_an_error(serve: Any) -> None:
    served = await serve("srv_stream", stream_capacity=2)
    headers = {"Accept": "text/event-stream", "Prefer": "respond-async"}
    async with served.client.stream(
        "PUT", "/predictions/s2", json={"input": {"n": 6}}, headers=headers
    ) as r:
        await r.aread()
    async with served.client.stream(
        "PUT", "/predictions/s2", json={"input": {"n": 6}}, headers=headers
    ) as r:
        events = parse_sse((await r.aread()).decode())
    assert events[0][0] == "error"
    assert events[0][1]["skipped"] > 0 and events[0][1]["error"]
    assert len(events) == 1


async def test_sse_client_leaving_cancels(serve: Any) -> None:
    served = await serve("srv_stream")
    async with httpx.AsyncClient(base_url=served.url) as other:
        async with other.stream(
            "PUT",
            "/predictions/s3",
            json={"input": {"n": 1000, "delay": 0.05}},
            headers={"Accept": "text/event-stream"},
        ) as r:
            async for chunk in r.aiter_text():
                if "output" in chunk:
                    break
    body = await served.wait_prediction("s3", timeout=10)
    assert body["status"] == "canceled"


async def test_sse_keepalive_comments(serve: Any) -> None:
    served = await serve("srv_stream", keepalive=0.1)
    async with served.client.stream(
        "PUT",
        "/predictions/k1",
        json={"input": {"n": 2, "delay": 0.5}},
        headers={"Accept": "text/event-stream"},
    ) as r:
        text = (await r.aread()).decode()
    assert ": keep-alive" in text
    assert parse_sse(text)[-1][0] == "completed"


async def test_sse_reader_of_an_async_prediction_gets_every_event(serve: Any) -> None:
    served = await serve("srv_stream")
    r = await served.client.put(
        "/predictions/a1",
        json={"input": {"n": 3, "delay": 0.2}},
        headers={"Prefer": "respond-async"},
    )
    assert r.status_code == 202
    async with served.client.stream(
        "PUT", "/predictions/a1", json={"input": {}}, headers={"Accept": "text/event-stream"}
    ) as r:
        events = parse_sse((await r.aread()).decode())
    assert [data["index"] for name, data in events if name == "output"] == [0, 1, 2]
    assert events[-1][0] == "completed"
    # its history is not kept after the end (it was not created over SSE)
    async with served.client.stream(
        "PUT", "/predictions/a1", json={"input": {}}, headers={"Accept": "text/event-stream"}
    ) as r:
        again = parse_sse((await r.aread()).decode())
    assert again[0][0] == "error" and again[0][1]["skipped"] == len(events)


async def test_webhook_forwards_traceparent(serve: Any, receiver: Any) -> None:
    served = await serve("srv_echo")
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = await served.client.post(
        "/predictions",
        json={"input": {}, "webhook": receiver.url, "webhook_events_filter": ["completed"]},
        headers={"traceparent": trace},
    )
    assert r.json()["status"] == "succeeded"
    await asyncio.to_thread(receiver.wait_for_bodies, lambda b: len(b) == 1)
    assert receiver.requests[0]["headers"]["traceparent"] == trace


async def test_webhooks_follow_the_address_policy(serve: Any, receiver: Any) -> None:
    from vendo.serving.records import FetchLimits

    port = receiver.url.rsplit(":", 1)[1].split("/")[0]
    served = await serve("srv_echo")
    # 0.0.0.0 would reach the receiver (it is this machine): refused, in any form
    for host in ("0.0.0.0", "0", "[::]", "169.254.169.254", "0xa9fea9fe", "192.0.0.192"):
        r = await served.client.post(
            "/predictions", json={"input": {}, "webhook": f"http://{host}:{port}/hook"}
        )
        assert r.status_code == 422, host
        assert r.json()["detail"][0]["loc"] == ["body", "webhook"]
    # loopback is allowed by default, in any form
    r = await served.client.post(
        "/predictions",
        json={"input": {}, "webhook": f"http://0x7f000001:{port}/hook"},
        headers={"Prefer": "respond-async"},
    )
    assert r.status_code == 202
    await asyncio.to_thread(
        receiver.wait_for_bodies, lambda b: b and b[-1]["status"] == "succeeded"
    )

    strict = await serve("srv_echo", fetch_limits=FetchLimits(allow_private=False))
    for host in ("127.0.0.1", "2130706433", "[::1]", "localhost"):
        r = await strict.client.post(
            "/predictions", json={"input": {}, "webhook": f"http://{host}:{port}/hook"}
        )
        assert r.status_code == 422, host
