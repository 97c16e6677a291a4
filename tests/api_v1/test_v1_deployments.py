"""Deployment routes: create, get, list, update (releases), disable, delete, and
predictions through a deployment, in-process on SQLite and PostgreSQL (the runs echo:
see EchoScheduler; the real scheduler's side is in test_deployments_live.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from api_v1_support import SCHEMA, VERSION, Api, EchoScheduler

from support import until_async
from vendo.status import pool_key
from vendo.store import MISS, Store

OTHER_VERSION = "cd" * 32


@pytest.fixture
def scheduler_factory() -> Any:
    return EchoScheduler


def _body(**changes: Any) -> dict[str, Any]:
    body = {
        "name": "prod",
        "model": "alice/hello",
        "version": VERSION,
        "hardware": "cpu",
        "min_instances": 0,
        "max_instances": 2,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


async def _create(api: Api, **changes: Any) -> dict[str, Any]:
    r = await api.client.post("/v1/deployments", json=_body(**changes), headers=api.alice)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_create_get_list(api: Api) -> None:
    made = await _create(api)
    release = made["current_release"]
    assert made["owner"] == "alice" and made["name"] == "prod"
    assert release["number"] == 1
    assert release["model"] == "alice/hello" and release["version"] == VERSION
    assert release["configuration"] == {"hardware": "cpu", "min_instances": 0, "max_instances": 2}
    assert release["created_by"]["username"] == "alice"
    got = await api.client.get("/v1/deployments/alice/prod", headers=api.alice)
    assert got.status_code == 200 and got.json() == made
    listed = await api.client.get("/v1/deployments", headers=api.alice)
    assert [d["name"] for d in listed.json()["results"]] == ["prod"]
    # another account sees none of it
    assert (await api.client.get("/v1/deployments/alice/prod", headers=api.bob)).status_code == 404
    assert (await api.client.get("/v1/deployments", headers=api.bob)).json()["results"] == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": None}, "name"),
        ({"name": "Bad Name"}, "name"),
        ({"model": "nope"}, "model"),
        ({"hardware": "gpu-imaginary"}, "hardware"),
        ({"min_instances": None}, "min_instances"),
        ({"max_instances": -1}, "max_instances"),
        ({"max_instances": True}, "max_instances"),
        ({"min_instances": 3, "max_instances": 1}, "min_instances"),
        ({"version": OTHER_VERSION}, "version"),
    ],
)
async def test_create_names_the_bad_field(api: Api, changes: dict[str, Any], field: str) -> None:
    r = await api.client.post("/v1/deployments", json=_body(**changes), headers=api.alice)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in {e["field"] for e in r.json()["invalid_fields"]}


async def test_create_refuses_unseen_models_and_taken_names(api: Api) -> None:
    r = await api.client.post("/v1/deployments", json=_body(model="alice/secret"), headers=api.bob)
    assert r.status_code == 404
    await _create(api)
    again = await api.client.post("/v1/deployments", json=_body(), headers=api.alice)
    assert again.status_code == 409


async def test_every_update_is_the_next_release(api: Api) -> None:
    await _create(api)
    url = "/v1/deployments/alice/prod"
    first = await api.client.patch(url, json={"max_instances": 3}, headers=api.alice)
    assert first.status_code == 200, first.text
    assert first.json()["current_release"]["number"] == 2
    second = await api.client.patch(url, json={"hardware": "cpu"}, headers=api.alice)
    assert second.json()["current_release"]["number"] == 3
    assert second.json()["current_release"]["configuration"]["max_instances"] == 3
    empty = await api.client.patch(url, json={}, headers=api.alice)
    assert empty.status_code == 422
    low = await api.client.patch(url, json={"min_instances": 5}, headers=api.alice)
    assert low.status_code == 422 and "min_instances" in low.text
    assert (
        await api.client.patch(url, json={"max_instances": 1}, headers=api.bob)
    ).status_code == 404
    store = api.platform.store
    found = store.deployments.get("alice", "prod")
    assert found is not None
    history = store.deployments.releases(found.deployment.id)
    assert [(r.number, r.max_instances) for r in history] == [(1, 2), (2, 3), (3, 3)]


async def test_predictions_carry_the_deployment(api: Api) -> None:
    await _create(api)
    r = await api.client.post(
        "/v1/deployments/alice/prod/predictions",
        json={"input": {"text": "via deployment"}},
        headers={**api.alice, "Prefer": "wait=5"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["deployment"] == "alice/prod" and body["version"] == VERSION
    assert body["status"] == "succeeded" and body["output"] == "via deployment"
    bad = await api.client.post(
        "/v1/deployments/alice/prod/predictions",
        json={"input": {"text": 3}},
        headers=api.alice,
    )
    assert bad.status_code == 422


async def test_disable_cancels_queued_and_refuses_new(api: Api) -> None:
    scheduler = api.platform.scheduler
    assert isinstance(scheduler, EchoScheduler)
    # as if every instance were busy: they stay queued. Held before the deployment is
    # made: its creation's claim (a task) could otherwise take a job posted below.
    scheduler.hold = True
    await _create(api)
    queued = []
    for i in range(3):
        r = await api.client.post(
            "/v1/deployments/alice/prod/predictions",
            json={"input": {"text": f"q{i}"}},
            headers=api.alice,
        )
        queued.append(r.json()["id"])
    assert api.platform.queue.depth(pool_key(VERSION, "alice/prod")) == 3
    url = "/v1/deployments/alice/prod"
    r = await api.client.patch(
        url, json={"min_instances": 0, "max_instances": 0}, headers=api.alice
    )
    assert r.status_code == 200
    for pid in queued:
        got = (await api.client.get(f"/v1/predictions/{pid}", headers=api.alice)).json()
        assert got["status"] == "canceled"
    refused = await api.client.post(
        f"{url}/predictions", json={"input": {"text": "late"}}, headers=api.alice
    )
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "disabled" in refused.json()["detail"]
    # the shared pool of the same version is not affected
    scheduler.hold = False
    shared = await api.client.post(
        "/v1/predictions",
        json={"version": VERSION, "input": {"text": "shared"}},
        headers={**api.alice, "Prefer": "wait=5"},
    )
    assert shared.json()["status"] == "succeeded" and shared.json()["deployment"] is None


async def test_delete_only_when_disabled_and_idle(api: Api) -> None:
    await _create(api)
    url = "/v1/deployments/alice/prod"
    enabled = await api.client.delete(url, headers=api.alice)
    assert enabled.status_code == 409 and "min_instances 0" in enabled.json()["detail"]
    await api.client.patch(url, json={"min_instances": 0, "max_instances": 0}, headers=api.alice)
    assert (await api.client.delete(url, headers=api.bob)).status_code == 404
    gone = await api.client.delete(url, headers=api.alice)
    assert gone.status_code == 204
    await until_async(
        lambda: api.platform.store.deployments.get("alice", "prod") is None, what="deleted"
    )
    assert (await api.client.get(url, headers=api.alice)).status_code == 404


# --- the cached read, releases that change the version, current_release ---------------

NEW_VERSION = "ef" * 32


def _stricter(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a shorter ``text``, a lower ``count`` and a shorter secret."""
    strict = copy.deepcopy(schema)
    props = strict["components"]["schemas"]["Input"]["properties"]
    props["text"]["maxLength"] = 5
    props["count"]["maximum"] = 3
    props["api_key"]["maxLength"] = 6  # the masked value (10 stars) would not fit
    return strict


def _new_version(api: Api, schema: dict[str, Any] | None = None) -> str:
    store = api.platform.store
    model = store.catalog.model("alice", "hello")
    assert model is not None
    store.catalog.create_version(model.id, NEW_VERSION, openapi_schema=schema or SCHEMA)
    return NEW_VERSION


async def _predict_on(api: Api, text: str = "hi", **more: Any) -> dict[str, Any]:
    r = await api.client.post(
        "/v1/deployments/alice/prod/predictions",
        json={"input": {"text": text, **more}},
        headers={**api.alice, "Prefer": "wait=5"},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_a_new_version_is_seen_by_the_next_prediction(api: Api) -> None:
    await _create(api)
    new = _new_version(api)
    store = api.platform.store
    assert (await _predict_on(api))["version"] == VERSION
    # the deployment came from the read cache, not a database read per request
    assert store.cached.deployment.peek("alice", "prod") is not MISS
    r = await api.client.patch(
        "/v1/deployments/alice/prod", json={"version": new}, headers=api.alice
    )
    assert r.status_code == 200, r.text
    after = await _predict_on(api)
    assert after["version"] == new and after["status"] == "succeeded"
    # disabled: the very next prediction is refused, however warm the cache was
    await api.client.patch(
        "/v1/deployments/alice/prod",
        json={"min_instances": 0, "max_instances": 0},
        headers=api.alice,
    )
    refused = await api.client.post(
        "/v1/deployments/alice/prod/predictions", json={"input": {"text": "x"}}, headers=api.alice
    )
    assert refused.status_code == 409
    assert (
        await api.client.delete("/v1/deployments/alice/prod", headers=api.alice)
    ).status_code == 204
    gone = await api.client.post(
        "/v1/deployments/alice/prod/predictions", json={"input": {"text": "x"}}, headers=api.alice
    )
    assert gone.status_code == 404


async def test_a_change_by_another_process_is_seen_once_its_stamp_changes(api: Api) -> None:
    """A second store on the same data dir (as another server or ``vendo`` command
    is): its release replaces the stamp, and the server's next request forgets its
    cached deployment."""
    await _create(api)
    new = _new_version(api)
    settings = api.platform.settings
    other = Store.from_settings(Path(settings.data_dir), settings.database_url, cache_ttl=3600)
    try:
        assert (await _predict_on(api))["version"] == VERSION
        cached_before = api.platform.store.cached.deployment.peek("alice", "prod")
        assert cached_before is not MISS
        found = other.deployments.get("alice", "prod")
        assert found is not None
        alice = found.deployment.owner_id
        other.deployments.release(found.deployment.id, alice, version_id=new)
        assert (await _predict_on(api))["version"] == new
    finally:
        other.close()


async def test_queued_predictions_are_checked_against_the_new_version(api: Api) -> None:
    scheduler = api.platform.scheduler
    assert isinstance(scheduler, EchoScheduler)
    scheduler.hold = True  # every prediction stays queued until the release change
    await _create(api)
    new = _new_version(api, _stricter(SCHEMA))
    ids = {}
    for label, given in {
        "fits": {"text": "ok"},
        "count": {"text": "ok", "count": 7},
        "secret": {"text": "ok", "api_key": "abc"},  # fits by its value, not its mask
        "text": {"text": "far too long"},
    }.items():
        r = await api.client.post(
            "/v1/deployments/alice/prod/predictions", json={"input": given}, headers=api.alice
        )
        assert r.status_code == 201, r.text
        ids[label] = r.json()["id"]
    r = await api.client.patch(
        "/v1/deployments/alice/prod", json={"version": new}, headers=api.alice
    )
    assert r.status_code == 200, r.text
    assert r.json()["current_release"]["number"] == 2
    for label in ("count", "text"):
        got = (await api.client.get(f"/v1/predictions/{ids[label]}", headers=api.alice)).json()
        assert got["status"] == "failed", got
        assert f"no longer fits version {new}" in got["error"]
        assert "release 2" in got["error"] and f"{label}:" in got["error"]
        assert api.platform.bus.is_done(ids[label])  # waiters and webhooks hear of it
    assert api.platform.queue.depth(pool_key(new, "alice/prod")) == 2
    scheduler.hold = False
    scheduler.notify(pool_key(new, "alice/prod"))
    for label in ("fits", "secret"):
        pid = ids[label]

        async def ended(pid: str = pid) -> bool:
            r = await api.client.get(f"/v1/predictions/{pid}", headers=api.alice)
            return bool(r.json()["status"] == "succeeded")

        await until_async(ended, what=f"{label} ran on the new version")
        got = (await api.client.get(f"/v1/predictions/{pid}", headers=api.alice)).json()
        assert got["version"] == new and got["error"] is None


async def test_current_release_is_replicates(api: Api) -> None:
    """Every release says who made it and when: the admin's change of alice's
    deployment is release 2 by the admin, on alice's deployment."""
    made = await _create(api)
    r = await api.client.patch(
        "/v1/deployments/alice/prod", json={"max_instances": 4}, headers=api.admin
    )
    assert r.status_code == 200, r.text
    release = r.json()["current_release"]
    assert r.json()["owner"] == "alice" and release["number"] == 2
    assert release["model"] == "alice/hello" and release["version"] == VERSION
    assert release["configuration"] == {"hardware": "cpu", "min_instances": 0, "max_instances": 4}
    assert set(release["created_by"]) == {"type", "username", "name", "github_url", "avatar_url"}
    assert release["created_by"]["type"] == "user"
    assert release["created_by"]["username"] == "admin"
    first_at = made["current_release"]["created_at"]
    assert release["created_at"].endswith("Z") and release["created_at"] > first_at
    got = await api.client.get("/v1/deployments/alice/prod", headers=api.alice)
    assert got.json() == r.json()
    listed = await api.client.get("/v1/deployments", headers=api.alice)
    assert listed.json()["results"] == [r.json()]
