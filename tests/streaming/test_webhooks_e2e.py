"""Webhooks of /v1 predictions, end to end: a real ``vendo serve`` posts to a real
receiver on loopback, which checks every signature with the ``standardwebhooks``
package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from streaming_support import Server, register_models

from support import Receiver, free_port, pending_deliveries, until

TERMINAL = ("succeeded", "failed", "canceled")


def verified(secret: str, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [Webhook(secret).verify(r["body"], r["headers"]) for r in requests]


def test_start_output_completed_arrive_signed_and_in_order(
    server: Server, versions: dict[str, str], receiver: Receiver
) -> None:
    secret = server.secret()
    p = server.create(versions["tokens"], {"count": 5, "pause": 0.3}, webhook=receiver.url)
    got = receiver.wait_for(lambda rs: any(b"succeeded" in r["body"] for r in rs))
    until(lambda: pending_deliveries(server.data_dir) == [], what="the outbox to be done")
    bodies = verified(secret, receiver.received())
    assert len(bodies) == len(got)
    assert all(b["id"] == p["id"] for b in bodies)
    statuses = [b["status"] for b in bodies]
    assert statuses[0] == "processing"  # start
    assert statuses[-1] == "succeeded"  # completed
    assert set(statuses[1:-1]) <= {"processing"}
    assert len(bodies) >= 3, "start, some output/logs, completed"
    outputs = [b["output"] or [] for b in bodies]
    assert all(a == b[: len(a)] for a, b in zip(outputs, outputs[1:], strict=False))
    assert bodies[-1]["output"] == [f"t{i}" for i in range(5)]
    assert bodies[-1]["logs"].count("log line") == 5
    # ~1.5 s of progress at most one per 0.2 s (this server's throttle), plus start/completed
    assert len(bodies) <= 1.5 / 0.2 + 4
    ids = [r["headers"]["webhook-id"] for r in receiver.received()]
    assert len(set(ids)) == len(ids)
    for request in receiver.received():
        assert request["headers"]["content-type"] == "application/json"
        assert request["headers"]["user-agent"].startswith("vendo/")
    assert bodies[-1]["urls"]["get"].endswith(f"/v1/predictions/{p['id']}")


def test_events_filter_is_honoured(
    server: Server, versions: dict[str, str], receiver: Receiver
) -> None:
    secret = server.secret()
    server.create(
        versions["tokens"],
        {"count": 3, "pause": 0.2},
        webhook=receiver.url,
        webhook_events_filter=["completed"],
    )
    receiver.wait_for(lambda rs: len(rs) >= 1)
    until(lambda: pending_deliveries(server.data_dir) == [], what="the outbox to be done")
    (body,) = verified(secret, receiver.received())
    assert body["status"] == "succeeded"


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]:8080/hook"],
)
def test_link_local_webhook_is_refused_at_create(
    server: Server, versions: dict[str, str], url: str
) -> None:
    r = httpx.post(
        f"{server.url}/v1/predictions",
        json={"version": versions["tokens"], "input": {}, "webhook": url},
        headers=server.headers,
        timeout=30,
    )
    assert r.status_code == 422
    assert "webhook" in json.dumps(r.json())


def _platform(tmp_path: Path, **env: str) -> tuple[Server, dict[str, str]]:
    data_dir = tmp_path / "data"
    versions = register_models(data_dir, {"coop": "cancel_cooperative"})
    return Server(data_dir, env=env), versions


@pytest.mark.slow  # two servers of its own
def test_pending_delivery_survives_a_server_restart(tmp_path: Path) -> None:
    server, versions = _platform(tmp_path)
    receiver = Receiver(port=free_port())  # down: nothing listens on its port yet
    server.start()
    try:
        secret = server.secret()
        p = server.create(versions["coop"], {"seconds": 0}, webhook=receiver.url)
        server.wait(p["id"])
        until(
            lambda: any(attempts >= 1 for _, attempts in pending_deliveries(server.data_dir)),
            what="the failed delivery to be recorded",
        )
    finally:
        server.stop()
    ((webhook_id, _),) = pending_deliveries(server.data_dir)  # still there with the server gone

    receiver.up()
    try:
        server.start()  # same data dir
        try:
            (request,) = receiver.wait_for(lambda rs: len(rs) >= 1)
            (body,) = verified(secret, [request])
        finally:
            server.stop()
    finally:
        receiver.down()
    assert request["headers"]["webhook-id"] == webhook_id
    assert body["id"] == p["id"] and body["status"] == "succeeded"
    assert pending_deliveries(server.data_dir) == []


@pytest.mark.slow
def test_completed_arrives_after_receiver_is_down_for_30_seconds(tmp_path: Path) -> None:
    """Default settings: retries back off until about a minute after completion."""
    server, versions = _platform(tmp_path)
    receiver = Receiver(port=free_port())
    server.start()
    try:
        secret = server.secret()
        p = server.create(versions["coop"], {"seconds": 0}, webhook=receiver.url)
        completed = server.wait(p["id"])
        # five attempts take the default schedule (1.9 + 3.9 + 7.7 + 15.5 s) about 30 s
        until(
            lambda: any(n >= 5 for _, n in pending_deliveries(server.data_dir)),
            timeout=90,
            what="five failed attempts while the receiver is down",
        )
        receiver.up()
        (request,) = receiver.wait_for(lambda rs: len(rs) >= 1, timeout=60)
        (body,) = verified(secret, [request])
        assert body["status"] == "succeeded" and body["id"] == completed["id"]
        until(lambda: pending_deliveries(server.data_dir) == [], timeout=10, what="delivery")
    finally:
        server.stop()
        receiver.down()


@pytest.mark.slow  # a server of its own; tests/api_v1 covers the rule in-process
def test_private_webhooks_refused_when_the_setting_says_so(tmp_path: Path) -> None:
    server, versions = _platform(tmp_path, VENDO_ALLOW_PRIVATE_URLS="false")
    server.start()
    try:
        for url in ("http://127.0.0.1:9/hook", "http://10.0.0.8/hook", "http://[::1]/hook"):
            r = httpx.post(
                f"{server.url}/v1/predictions",
                json={"version": versions["coop"], "input": {"seconds": 0}, "webhook": url},
                headers=server.headers,
                timeout=30,
            )
            assert r.status_code == 422, (url, r.text)
            assert "webhook" in json.dumps(r.json())
    finally:
        server.stop()


def test_canceled_prediction_sends_completed_canceled(
    server: Server, versions: dict[str, str], receiver: Receiver
) -> None:
    secret = server.secret()
    p = server.create(versions["coop"], {"seconds": 60}, webhook=receiver.url)
    server.wait(p["id"], ("processing",))
    server.cancel(p["id"])
    receiver.wait_for(lambda rs: any(b"canceled" in r["body"] for r in rs))
    bodies = verified(secret, receiver.received())
    statuses = [b["status"] for b in bodies]
    assert statuses[0] == "processing" and statuses[-1] == "canceled"  # start ... completed
    assert set(statuses[1:-1]) <= {"processing"}  # the "sleeping" log line
