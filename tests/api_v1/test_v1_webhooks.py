"""Webhooks of /v1 predictions reach a real HTTP receiver, signed with the account's
secret (Standard Webhooks)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from api_v1_support import VERSION, Api, EchoScheduler
from standardwebhooks import Webhook

from support import until_async


@pytest.fixture
def scheduler_factory() -> Any:
    return EchoScheduler


async def test_completed_webhook_is_signed(api: Api, receiver: Any) -> None:
    url, received = receiver.url, receiver.requests
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
    await until_async(lambda: received, timeout=5, what="the webhook")
    assert len(received) == 1
    headers, body = received[0]["headers"], received[0]["body"]
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
    received = receiver.requests
    relay = api.platform.webhook_relay
    api.platform.scheduler.hold = True  # type: ignore[union-attr]  # stays queued
    r = await api.client.post(
        "/v1/predictions", headers=api.alice, json={"version": VERSION, "input": {"text": "hi"}}
    )
    pid = r.json()["id"]
    # known before any event, so the relay never reads the prediction to find out
    assert relay._targets.get(pid, "unknown") is None
    r = await api.client.post(f"/v1/predictions/{pid}/cancel", headers=api.alice)
    assert r.json()["status"] == "canceled"
    # the relay has handled the done event
    await until_async(lambda: pid not in relay._targets, timeout=5, what="the relay")
    assert received == []


async def test_a_delivered_completed_marks_the_prediction(api: Api, receiver: Any) -> None:
    url = receiver.url
    r = await api.client.post(
        "/v1/predictions",
        headers={**api.alice, "Prefer": "wait"},
        json={"version": VERSION, "input": {"text": "hi"}, "webhook": url},
    )
    store = api.platform.store

    async def marked() -> bool:
        row = await asyncio.to_thread(store.predictions.get, r.json()["id"])
        return row is not None and row.webhook_done

    await until_async(marked, timeout=5, what="webhook_done")
    assert await asyncio.to_thread(store.predictions.owed_webhooks) == []


async def test_a_completed_never_handed_over_is_sent_at_start_up(
    tmp_path: Any, receiver: Any
) -> None:
    # As if the server died between a prediction's terminal write and the outbox storing
    # its completed webhook: the row is finished, the webhook still owed.
    from api_v1_support import ADMIN_TOKEN, SCHEMA

    from vendo.app import create_app
    from vendo.config import Settings
    from vendo.store import new_id, utcnow
    from vendo.store.tables import PredictionRow

    url, received = receiver.url, receiver.requests
    settings = Settings(data_dir=tmp_path / "data", api_token=ADMIN_TOKEN, _env_file=None)
    app = create_app(settings, run_scheduler=False)
    async with app.router.lifespan_context(app):
        store = app.state.platform.store
        admin = store.accounts.user_named("admin")
        model = store.catalog.create_model(admin.id, "m")
        store.catalog.create_version(model.id, VERSION, openapi_schema=SCHEMA)
        now = utcnow()
        row = PredictionRow(
            id=new_id(), owner_id=admin.id, model_id=model.id, model="admin/m",
            version_id=VERSION, input={"text": "hi"}, output="hi", status="succeeded",
            created_at=now, started_at=now, completed_at=now, webhook=url,
            base_url="http://testserver",
        )  # fmt: skip
        with store.write() as s:
            s.add(row)
        assert store.predictions.owed_webhooks() == [row.id]
    assert received == []

    app = create_app(settings, run_scheduler=False)
    async with app.router.lifespan_context(app):
        await until_async(lambda: received, timeout=5, what="the owed webhook")
        store = app.state.platform.store
        await until_async(
            lambda: store.predictions.owed_webhooks() == [], timeout=5, what="nothing owed"
        )
        await app.state.platform.webhook_relay.outbox.drain()  # delivered and forgotten
    assert len(received) == 1
    sent = json.loads(received[0]["body"])
    assert sent["id"] == row.id and sent["status"] == "succeeded" and sent["output"] == "hi"

    app = create_app(settings, run_scheduler=False)  # a third start owes nothing
    async with app.router.lifespan_context(app):
        # start-up has resumed what was owed (awaited): the outbox is done with it
        await app.state.platform.webhook_relay.outbox.drain()
    assert len(received) == 1


async def test_a_repeated_done_sends_no_second_terminal_message(api: Api, receiver: Any) -> None:
    # Whatever publishes a prediction's end twice (a cancel racing the end, a restart),
    # the receiver gets one terminal message.

    url, received = receiver.url, receiver.requests
    r = await api.client.post(
        "/v1/predictions",
        headers={**api.alice, "Prefer": "wait"},
        json={"version": VERSION, "input": {"text": "hi"}, "webhook": url},
    )
    pid = r.json()["id"]
    store = api.platform.store

    async def delivered() -> bool:
        row = await asyncio.to_thread(store.predictions.get, pid)
        return row is not None and row.webhook_done and bool(received)

    await until_async(delivered, timeout=5, what="the terminal webhook")
    api.platform.bus.publish(pid, "done", {})
    api.platform.bus.publish(pid, "start", {})
    # A barrier instead of a pause: the relay handles events in order, so once a later
    # prediction's completed webhook is in, the repeated done and the late start have
    # been handled; the outbox's drain covers a completed they might have queued.
    later = await api.client.post(
        "/v1/predictions",
        headers={**api.alice, "Prefer": "wait"},
        json={"version": VERSION, "input": {"text": "later"}, "webhook": url},
    )
    await until_async(
        lambda: any(json.loads(r["body"])["id"] == later.json()["id"] for r in received),
        timeout=5,
        what="the later prediction's webhook",
    )
    await api.platform.webhook_relay.outbox.drain()
    mine = [r for r in received if json.loads(r["body"])["id"] == pid]
    terminal = [
        r["headers"]["webhook-id"] for r in mine if json.loads(r["body"])["status"] == "succeeded"
    ]
    assert len(terminal) == 1
    # and nothing after it: the late start is not sent either
    assert json.loads(mine[-1]["body"])["status"] == "succeeded"
