from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from vendo.webhooks.sender import (
    PredictionWebhook,
    RetryPolicy,
    StandardWebhooksSigner,
    WebhookMessage,
    WebhookSender,
    parse_events_filter,
)
from vendo.webhooks.signing import new_secret, verify

FAST = RetryPolicy(attempts=5, base=0.01)


def make_sender(**kwargs: Any) -> WebhookSender:
    return WebhookSender(user_agent="vendo/test", retry=FAST, **kwargs)


async def in_thread(fn: Any, *args: Any) -> None:
    await asyncio.to_thread(fn, *args)


async def test_completed_is_retried_until_2xx(receiver: Any) -> None:
    receiver.statuses = [503, 503]
    sender = make_sender(auth_token="tok")
    state = {"id": "p1", "status": "succeeded"}
    hook = PredictionWebhook(sender, receiver.url, lambda: state)
    hook.notify("completed")
    await hook.wait_closed()
    await sender.aclose()
    assert len(receiver.requests) == 3
    headers = receiver.requests[0]["headers"]
    assert headers["User-Agent"] == "vendo/test"
    assert headers["Authorization"] == "Bearer tok"


async def test_intermediate_events_are_not_retried(receiver: Any) -> None:
    receiver.statuses = [503]
    sender = make_sender()
    state: dict[str, Any] = {"id": "p1", "status": "processing"}
    hook = PredictionWebhook(sender, receiver.url, lambda: dict(state))
    hook.notify("start")
    state["status"] = "succeeded"
    hook.notify("completed")
    await hook.wait_closed()
    await sender.aclose()
    statuses = [b["status"] for b in receiver.bodies()]
    assert len(statuses) == 2  # start once (not retried), completed once


async def test_completed_not_retried_on_400(receiver: Any) -> None:
    receiver.statuses = [400]
    sender = make_sender()
    hook = PredictionWebhook(sender, receiver.url, lambda: {"status": "failed"})
    hook.notify("completed")
    await hook.wait_closed()
    await sender.aclose()
    assert len(receiver.requests) == 1


async def test_filter_and_nothing_after_completed(receiver: Any) -> None:
    sender = make_sender()
    hook = PredictionWebhook(
        sender, receiver.url, lambda: {"status": "x"}, events=frozenset({"completed"})
    )
    hook.notify("start")
    hook.notify("output")
    hook.notify("logs")
    hook.notify("completed")
    hook.notify("output")
    await hook.wait_closed()
    await sender.aclose()
    assert len(receiver.requests) == 1


async def test_progress_is_throttled_with_trailing_send(receiver: Any) -> None:
    sender = make_sender()
    state: dict[str, Any] = {"output": []}
    hook = PredictionWebhook(
        sender, receiver.url, lambda: {"output": list(state["output"])}, throttle_interval=0.3
    )
    started = time.monotonic()
    for i in range(20):
        state["output"].append(i)
        hook.notify("output")
        await asyncio.sleep(0.02)  # not a wait: the rate of updates under test
    # no completed yet: the trailing send must still deliver the latest state
    await in_thread(
        receiver.wait_for_bodies, lambda bodies: bodies and len(bodies[-1]["output"]) == 20
    )
    elapsed = time.monotonic() - started
    assert 2 <= len(receiver.requests) <= elapsed / 0.3 + 2
    hook.notify("completed")
    await hook.wait_closed()
    await sender.aclose()
    outputs = [len(b["output"]) for b in receiver.bodies()]
    assert outputs == sorted(outputs)  # delivered in order


async def test_dead_receiver_does_not_raise() -> None:
    sender = make_sender()
    hook = PredictionWebhook(sender, "http://127.0.0.1:9/nope", lambda: {"status": "x"})
    hook.notify("start")
    hook.notify("completed")
    await asyncio.wait_for(hook.wait_closed(), 10)
    await sender.aclose()


async def test_signing_headers_are_stable_per_message(receiver: Any) -> None:
    secret = new_secret()
    receiver.statuses = [500]
    sender = make_sender(signer=StandardWebhooksSigner((secret,)))
    message = WebhookMessage(receiver.url, "completed", b'{"a":1}')
    assert await sender.deliver(message)
    ids = {r["headers"]["webhook-id"] for r in receiver.requests}
    assert ids == {message.id}
    last = receiver.requests[-1]["headers"]
    assert verify(secret, last, b'{"a":1}')
    await sender.aclose()


def test_parse_events_filter() -> None:
    assert parse_events_filter(None) == {"start", "output", "logs", "completed"}
    assert parse_events_filter(["completed"]) == {"completed"}
    with pytest.raises(ValueError):
        parse_events_filter(["nope"])


async def test_retry_any_error_status_policy(receiver: Any) -> None:
    receiver.statuses = [404, 400]
    sender = WebhookSender(
        user_agent="vendo/test", retry=RetryPolicy(attempts=5, base=0.01, statuses=None)
    )
    assert await sender.deliver(WebhookMessage(receiver.url, "completed", b"{}"))
    assert len(receiver.requests) == 3
    await sender.aclose()
