"""The sync path (``Prefer: wait``) with the real scheduler and a real runner child:
what a reply promises holds (the prediction can be read back at once, whatever the
wait ended with), and cached tokens, models and versions never outlive a change made
through the server. In-process app on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_v1_support import Api, echo_api

from support import until_async

VERSION = "e1" * 32


@pytest.fixture
async def api(tmp_path: Path, db_url: str) -> AsyncIterator[Api]:
    async with echo_api(
        tmp_path, db_url, VERSION, concurrency_max=None, raise_app_exceptions=True
    ) as api:
        yield api


async def run(api: Api, who: dict[str, str], wait: str = "wait", **body: Any) -> httpx.Response:
    body.setdefault("version", VERSION)
    return await api.client.post(
        "/v1/predictions", json=body, headers={**who, "Prefer": wait}, timeout=60
    )


async def test_a_finished_wait_is_readable_at_once_and_counted(api: Api) -> None:
    first = await run(api, api.bob, input={"text": "warm"})  # cold start
    assert first.status_code == 201 and first.json()["status"] == "succeeded", (
        first.json()["error"],
        first.json()["logs"],
    )
    replies = [await run(api, api.bob, input={"text": f"t{i}"}) for i in range(5)]
    for i, reply in enumerate(replies):
        data = reply.json()
        assert data["status"] == "succeeded" and data["output"] == f"t{i}"
        assert f"echoing t{i}" in data["logs"]
        assert data["started_at"] and data["completed_at"]
        got = await api.client.get(f"/v1/predictions/{data['id']}", headers=api.bob)
        assert got.status_code == 200
        stored = got.json()
        for key in ("status", "output", "logs", "created_at", "started_at", "completed_at"):
            assert stored[key] == data[key], key
    model = await api.client.get("/v1/models/alice/echo", headers=api.alice)
    assert model.json()["run_count"] == 6
    listed = await api.client.get("/v1/predictions", headers=api.bob)
    assert len(listed.json()["results"]) == 6


async def test_a_wait_that_runs_out_leaves_a_readable_running_prediction(api: Api) -> None:
    await run(api, api.bob, input={"text": "warm"})
    reply = await run(api, api.bob, wait="wait=1", input={"text": "slow", "sleep": 2.5})
    assert reply.status_code == 201
    data = reply.json()
    assert data["status"] == "starting"  # what the clients poll on
    got = await api.client.get(f"/v1/predictions/{data['id']}", headers=api.bob)
    assert got.status_code == 200 and got.json()["status"] == "processing"
    assert "echoing slow" in got.json()["logs"]

    async def succeeded() -> dict[str, Any] | None:
        got = await api.client.get(f"/v1/predictions/{data['id']}", headers=api.bob)
        return got.json() if got.json()["status"] == "succeeded" else None

    done = await until_async(succeeded, timeout=10, what="the prediction to succeed")
    assert done["output"] == "slow"


async def test_a_model_made_private_is_gone_for_others_at_once(api: Api) -> None:
    # Both the model (by name) and its version (by id) were cached by the first run.
    by_model = {"version": "alice/echo"}
    assert (await run(api, api.bob, input={"text": "a"}, **by_model)).status_code == 201
    store = api.platform.store  # no route changes visibility: the store does it here
    model = await asyncio.to_thread(store.catalog.model, "alice", "echo")
    await asyncio.to_thread(store.catalog.update_model, model.id, visibility="private")
    assert (await run(api, api.bob, input={"text": "b"}, **by_model)).status_code == 404
    assert (await run(api, api.bob, input={"text": "c"})).status_code == 404  # by id
    assert (await run(api, api.alice, input={"text": "d"})).status_code == 201


async def test_a_deleted_version_is_gone_at_once(api: Api) -> None:
    assert (await run(api, api.alice, input={"text": "a"})).status_code == 201
    path = f"/v1/models/alice/echo/versions/{VERSION}"
    deleted = await api.client.delete(path, headers=api.alice)
    assert deleted.status_code in (200, 202, 204)
    assert (await run(api, api.alice, input={"text": "b"})).status_code == 404


async def test_a_new_token_works_at_once_after_being_refused(api: Api) -> None:
    token = "fresh-token-for-carol"
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.client.get("/v1/account", headers=headers)).status_code == 401
    store = api.platform.store
    carol = await asyncio.to_thread(store.accounts.create_user, "carol")
    await asyncio.to_thread(store.accounts.create_token, carol.id, token)
    account = await api.client.get("/v1/account", headers=headers)
    assert account.status_code == 200 and account.json()["username"] == "carol"
