"""/v1/usage, credit and rate limits through the app (in-process, real store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_v1_support import (
    ADMIN_TOKEN,
    SCHEMA,
    VERSION,
    Api,
    add_local_version,
    echo_api,
)

from support import until_async
from vendo.app import create_app
from vendo.config import Settings

PROBLEM = "application/problem+json"


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def test_usage_is_the_callers_own_and_others_are_not_found(api: Api) -> None:
    c = api.client
    own = await c.get("/v1/usage", headers=api.alice)
    assert own.status_code == 200, own.text
    body = own.json()
    assert body["account"] == "alice" and body["group_by"] == "day"
    assert body["results"] == [] and body["total"]["total_seconds"] == 0
    assert (await c.get("/v1/usage?account=alice", headers=api.alice)).json()["account"] == "alice"
    # another account's usage, existing or not, is 404 alike
    for name in ("bob", "nobody"):
        problem = _problem(await c.get(f"/v1/usage?account={name}", headers=api.alice), 404)
        assert name in problem["detail"]
    admin = await c.get("/v1/usage?account=bob&group_by=hardware", headers=api.admin)
    assert admin.json()["account"] == "bob" and admin.json()["group_by"] == "hardware"
    _problem(await c.get("/v1/usage?account=nobody", headers=api.admin), 404)
    _problem(await c.get("/v1/usage"), 401)


@pytest.mark.parametrize(
    ("query", "status", "named"),
    [
        ("group_by=week", 422, "group_by"),
        ("start=yesterday", 400, "start"),
        ("end=2026-13-01", 400, "end"),
        ("start=2026-12-02&end=2026-12-01", 422, "start"),
    ],
)
async def test_bad_usage_parameters_name_the_field(
    api: Api, query: str, status: int, named: str
) -> None:
    problem = _problem(await api.client.get(f"/v1/usage?{query}", headers=api.alice), status)
    assert named in problem["detail"]


async def test_credit_is_set_by_an_admin_and_zero_refuses_new_predictions(api: Api) -> None:
    c = api.client
    unset = await c.get("/v1/accounts/alice/credit", headers=api.alice)
    assert unset.json() == {"account": "alice", "credit": None, "remaining": None, "set_at": None}
    _problem(await c.put("/v1/accounts/alice/credit", json={"amount": 5}, headers=api.alice), 403)
    _problem(await c.get("/v1/accounts/alice/credit", headers=api.bob), 404)
    for bad in ({"amount": -1}, {"amount": "lots"}, {"amount": True}, {}):
        problem = _problem(
            await c.put("/v1/accounts/alice/credit", json=bad, headers=api.admin), 422
        )
        assert "amount" in problem["detail"]
    zero = await c.put("/v1/accounts/alice/credit", json={"amount": 0}, headers=api.admin)
    assert zero.status_code == 200 and zero.json()["credit"] == 0 and zero.json()["remaining"] == 0
    create = {"version": VERSION, "input": {"text": "hi"}}
    refused = _problem(await c.post("/v1/predictions", json=create, headers=api.alice), 402)
    assert "alice" in refused["detail"] and "credit" in refused["detail"]
    listed = await c.get("/v1/predictions", headers=api.alice)
    assert listed.json()["results"] == []  # nothing was created
    # nor a training
    store, trainer = api.platform.store, "ee" * 32
    model = store.catalog.model("alice", "hello")
    assert model is not None
    store.catalog.create_version(
        model.id, trainer, openapi_schema=SCHEMA, config={"train": "train.py:train"}
    )
    train = {"destination": "alice/secret", "input": {"text": "hi"}}
    url = f"/v1/models/alice/hello/versions/{trainer}/trainings"
    _problem(await c.post(url, json=train, headers=api.alice), 402)
    assert (await c.get("/v1/trainings", headers=api.alice)).json()["results"] == []
    # bob's credit is unlimited: he goes on
    assert (await c.post("/v1/predictions", json=create, headers=api.bob)).status_code == 201
    back = await c.put("/v1/accounts/alice/credit", json={"amount": None}, headers=api.admin)
    assert back.json()["credit"] is None
    assert (await c.post("/v1/predictions", json=create, headers=api.alice)).status_code == 201


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(
        data_dir=tmp_path / "data",
        api_token=ADMIN_TOKEN,
        rate_limit_create=1,  # one a minute: no refill within the test
        rate_limit_create_burst=2,
        rate_limit_other=1,
        rate_limit_other_burst=3,
        _env_file=None,
    )
    app = create_app(settings, run_scheduler=False)
    async with app.router.lifespan_context(app):
        store = app.state.platform.store
        alice = store.accounts.create_user("alice")
        bob = store.accounts.create_user("bob")
        model = store.catalog.create_model(alice.id, "hello", visibility="public")
        store.catalog.create_version(model.id, VERSION, openapi_schema=SCHEMA)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield Api(
                client=c,
                platform=app.state.platform,
                admin={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                alice={"Authorization": f"Bearer {store.accounts.create_token(alice.id)}"},
                bob={"Authorization": f"Bearer {store.accounts.create_token(bob.id)}"},
            )


async def test_a_throttled_create_creates_nothing_and_says_when_to_retry(limited: Api) -> None:
    c, create = limited.client, {"version": VERSION, "input": {"text": "hi"}}
    for _ in range(2):  # the burst
        assert (
            await c.post("/v1/predictions", json=create, headers=limited.alice)
        ).status_code == 201
    throttled = await c.post("/v1/predictions", json=create, headers=limited.alice)
    body = _problem(throttled, 429)
    assert body["detail"].startswith("Request was throttled. Expected available in")
    assert body["retry_after"] >= 1
    assert throttled.headers["retry-after"] == str(body["retry_after"])
    assert throttled.headers["ratelimit-remaining"] == "0"
    assert int(throttled.headers["ratelimit-reset"]) >= body["retry_after"]
    # the other bucket is apart: reading is still allowed, and shows two predictions
    listed = await c.get("/v1/predictions", headers=limited.alice)
    assert listed.status_code == 200 and len(listed.json()["results"]) == 2
    # each token has its own buckets
    assert (await c.post("/v1/predictions", json=create, headers=limited.bob)).status_code == 201


async def test_other_requests_have_their_own_bucket(limited: Api) -> None:
    c = limited.client
    for _ in range(3):
        assert (await c.get("/v1/account", headers=limited.bob)).status_code == 200
    body = _problem(await c.get("/v1/hardware", headers=limited.bob), 429)
    assert body["retry_after"] >= 1
    create = {"version": VERSION, "input": {"text": "hi"}}
    assert (await c.post("/v1/predictions", json=create, headers=limited.bob)).status_code == 201


async def test_an_account_out_of_credit_has_its_private_runner_stopped(
    tmp_path: Path, db_url: str
) -> None:
    """A run accepted before the credit ran out finishes; then the runner stops (without
    waiting for the idle timeout), and new predictions are refused."""
    async with echo_api(tmp_path, db_url, VERSION, credit_check_interval=0.2) as api:
        p, c = api.platform, api.client
        alice = p.store.accounts.user_named("alice")
        assert alice is not None
        model = p.store.catalog.create_model(alice.id, "mine", visibility="private")
        private = "ef" * 32
        add_local_version(p.store, model.id, private, concurrency_max=1)
        create = {"version": private, "input": {"text": "slow", "sleep": 1.0}}
        accepted = await c.post("/v1/predictions", json=create, headers=api.alice)
        assert accepted.status_code == 201
        url = f"/v1/predictions/{accepted.json()['id']}"

        async def status() -> str:
            return str((await c.get(url, headers=api.alice)).json()["status"])

        await until_async(lambda: _is(status, "processing"), timeout=60)
        zero = await c.put("/v1/accounts/alice/credit", json={"amount": 0}, headers=api.admin)
        assert zero.status_code == 200
        _problem(await c.post("/v1/predictions", json=create, headers=api.alice), 402)
        await until_async(lambda: _is(status, "succeeded"), timeout=60)
        pool = p.scheduler.pool(private)  # type: ignore[union-attr]
        assert pool is not None
        await until_async(lambda: not pool.warm, timeout=30, what="the runner to stop")


async def _is(status: Any, wanted: str) -> bool:
    return bool(await status() == wanted)
