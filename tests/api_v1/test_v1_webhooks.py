"""Webhooks of /v1 predictions reach a real HTTP receiver, signed with the account's
secret (Standard Webhooks)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from api_v1_support import VERSION, Api, EchoScheduler
from standardwebhooks import Webhook


@pytest.fixture
def scheduler_factory() -> Any:
    return EchoScheduler


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()
    thread.join(5)


async def test_completed_webhook_is_signed(api: Api, receiver: Any) -> None:
    url, received = receiver
    r = await api.client.post(
        "/v1/predictions",
        headers={**api.alice, "Prefer": "wait"},
        json={
            "version": VERSION,
            "input": {"text": "hi"},
            "webhook": url,
            "webhook_events_filter": ["completed"],
        },
    )
    assert r.json()["status"] == "succeeded"
    for _ in range(100):
        if received:
            break
        await asyncio.sleep(0.05)
    assert len(received) == 1
    headers, body = received[0]
    secret = (await api.client.get("/v1/webhooks/default/secret", headers=api.alice)).json()["key"]
    Webhook(secret).verify(body, headers)  # raises if the signature is wrong
    sent = json.loads(body)
    assert sent["id"] == r.json()["id"] and sent["status"] == "succeeded"
    assert sent["output"] == "hi"
    assert sent["urls"]["get"].startswith("http://testserver/v1/predictions/")


async def test_private_webhook_refused_when_not_allowed(api: Api) -> None:
    api.platform.settings.allow_private_urls = False
    r = await api.client.post(
        "/v1/predictions",
        headers=api.alice,
        json={"version": VERSION, "input": {"text": "hi"}, "webhook": "http://127.0.0.1:1/x"},
    )
    assert r.status_code == 422 and r.json()["invalid_fields"][0]["field"] == "webhook"


async def test_no_webhook_is_known_from_create(api: Api, receiver: Any) -> None:
    from vendo.api.v1.webhooks import RELAY_KEY

    _, received = receiver
    relay = api.platform.extras[RELAY_KEY]
    api.platform.scheduler.hold = True  # type: ignore[union-attr]  # stays queued
    r = await api.client.post(
        "/v1/predictions", headers=api.alice, json={"version": VERSION, "input": {"text": "hi"}}
    )
    pid = r.json()["id"]
    # known before any event, so the relay never reads the prediction to find out
    assert relay._targets.get(pid, "unknown") is None
    r = await api.client.post(f"/v1/predictions/{pid}/cancel", headers=api.alice)
    assert r.json()["status"] == "canceled"
    for _ in range(100):  # the relay has handled the done event
        if pid not in relay._targets:
            break
        await asyncio.sleep(0.02)
    assert pid not in relay._targets
    assert received == []
