"""GET /, /health-check, /openapi.json, sync and async predictions (spec/cog.md §8, §10)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from support import until_async


def assert_timestamps(body: dict[str, Any]) -> None:
    for key in ("created_at", "started_at", "completed_at"):
        assert body[key], key
        datetime.fromisoformat(body[key])
    assert body["created_at"] <= body["started_at"] <= body["completed_at"]


async def test_root_keys(serve: Any) -> None:
    served = await serve("srv_echo")
    body = (await served.client.get("/")).json()
    for key in (
        "cog_version",
        "docs_url",
        "openapi_url",
        "shutdown_url",
        "healthcheck_url",
        "predictions_url",
        "predictions_idempotent_url",
        "predictions_cancel_url",
    ):
        assert key in body, key
    assert not any(key.startswith("trainings_") for key in body)
    openapi = (await served.client.get("/openapi.json")).json()
    assert openapi["components"]["schemas"]["Input"]["properties"]["text"]["type"] == "string"


async def test_sync_prediction_has_input_timestamps_and_metrics(serve: Any) -> None:
    served = await serve("srv_echo")
    r = await served.client.post("/predictions", json={"input": {"text": "ab", "count": 3}})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "succeeded" and body["output"] == "ababab"
    assert body["input"] == {"text": "ab", "count": 3}
    assert "echo call" in body["logs"]
    assert body["metrics"]["predict_time"] >= 0
    assert body["error"] is None and body["id"]
    assert_timestamps(body)


async def test_failed_sync_prediction_is_200_with_error_and_logs(serve: Any) -> None:
    served = await serve("srv_echo")
    r = await served.client.post("/predictions", json={"input": {"text": "fail"}})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "failed"
    assert body["error"] == "ValueError: asked to fail"
    assert "echo call" in body["logs"]
    assert "predict_time" in body["metrics"]
    assert_timestamps(body)


async def test_system_exit_fails_only_that_prediction(serve: Any) -> None:
    served = await serve("srv_echo")
    r = await served.client.post("/predictions", json={"input": {"text": "exit"}})
    assert r.json()["status"] == "failed"
    r = await served.client.post("/predictions", json={"input": {"text": "calls"}})
    assert r.json()["output"] == "2"  # same child: module state kept


async def test_secret_is_masked(serve: Any) -> None:
    served = await serve("srv_echo")
    r = await served.client.post("/predictions", json={"input": {"text": "a", "token": "s3cret"}})
    body = r.json()
    assert body["output"] == "a:s3cret"
    assert body["input"]["token"] == "**********"


async def test_validation_errors_are_422(serve: Any) -> None:
    served = await serve("srv_echo")
    r = await served.client.post("/predictions", json={"input": {"count": 11, "extra": 1}})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail[0]["loc"] == ["body", "input", "count"]
    assert detail[0]["type"] == "value_error" and detail[0]["msg"]
    r = await served.client.post("/predictions", content=b"{not json")
    assert r.status_code == 400
    r = await served.client.post("/predictions")  # no body at all = {}
    assert r.status_code == 200 and r.json()["output"] == "hi"


async def test_respond_async_token_parsing(serve: Any) -> None:
    served = await serve("srv_echo")
    for prefer in ("respond-async", "wait=5, respond-async", "Respond-Async; foo=bar"):
        r = await served.client.post(
            "/predictions", json={"input": {"text": "x"}}, headers={"Prefer": prefer}
        )
        assert r.status_code == 202, prefer
        assert r.json()["status"] == "starting"
        assert r.json()["created_at"]
        pid = r.json()["id"]
        got = await served.wait_prediction(pid, timeout=10)
        assert got["output"] == "x"
    r = await served.client.post("/predictions", json={}, headers={"Prefer": "respond-asyncx"})
    assert r.status_code == 200


async def test_back_to_back_sync_requests_never_409(serve: Any) -> None:
    served = await serve("srv_echo")
    codes = []
    for i in range(200):
        r = await served.client.post("/predictions", json={"input": {"text": str(i)}})
        codes.append(r.status_code)
    assert codes.count(200) == 200


async def test_busy_slot_is_409(serve: Any) -> None:
    served = await serve("srv_sleep")
    r = await served.client.post(
        "/predictions",
        json={"id": "long", "input": {"seconds": 30}},
        headers={"Prefer": "respond-async"},
    )
    assert r.status_code == 202
    body = await served.wait_status("BUSY")
    assert body["status"] == "BUSY"
    r = await served.client.post("/predictions", json={"input": {"seconds": 0}})
    assert r.status_code == 409
    assert r.json()["status"] == "failed" and r.json()["error"]
    # a POST that reuses a running id is a 409 too
    r = await served.client.post("/predictions", json={"id": "long", "input": {}})
    assert r.status_code == 409
    assert (await served.client.post("/predictions/long/cancel")).status_code == 200


async def test_put_idempotency(serve: Any) -> None:
    served = await serve("srv_sleep")
    r = await served.client.put("/predictions/a", json={"id": "b", "input": {}})
    assert r.status_code == 422
    r = await served.client.put(
        "/predictions/p1", json={"input": {"seconds": 0.5}}, headers={"Prefer": "respond-async"}
    )
    assert r.status_code == 202
    # the same PUT again while it runs: its state, not a second run and not a 409
    r = await served.client.put(
        "/predictions/p1", json={"input": {"seconds": 0.5}}, headers={"Prefer": "respond-async"}
    )
    assert r.status_code == 202 and r.json()["id"] == "p1"
    # a sync retry waits for the result
    r = await served.client.put("/predictions/p1", json={"input": {"seconds": 0.5}})
    assert r.status_code == 200
    first = r.json()
    assert first["status"] == "succeeded"
    # finished: the stored result, not a rerun
    r = await served.client.put("/predictions/p1", json={"input": {"seconds": 5}})
    assert r.status_code == 200 and r.json() == first


async def test_cancel_unknown_is_404(serve: Any) -> None:
    served = await serve("srv_echo")
    r = await served.client.post("/predictions/nope/cancel")
    assert r.status_code == 404 and r.json() == {}
    r = await served.client.get("/predictions/nope")
    assert r.status_code == 404


async def test_shutdown(serve: Any) -> None:
    served = await serve("srv_echo")
    r = await served.client.post("/shutdown")
    assert r.status_code == 200 and r.json() == {}
    await until_async(lambda: served.uvicorn.should_exit, timeout=5, what="should_exit")


async def test_not_found_routes(serve: Any) -> None:
    served = await serve("srv_echo")
    r = await served.client.post("/trainings", json={})
    assert r.status_code == 404
    assert isinstance(r, httpx.Response)


async def test_bad_webhook_and_context_are_422(serve: Any) -> None:
    served = await serve("srv_echo")
    r = await served.client.post("/predictions", json={"input": {}, "webhook": "ftp://x"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "webhook"]
    r = await served.client.post(
        "/predictions", json={"input": {}, "webhook": "http://x", "webhook_events_filter": ["no"]}
    )
    assert r.status_code == 422
    r = await served.client.post("/predictions", json={"input": {}, "context": {"a": 1}})
    assert r.status_code == 422
