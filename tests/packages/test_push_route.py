"""The push route in process (ASGI): who may push where, idempotent ids, streaming."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from vendo.app import create_app
from vendo.config import Settings
from vendo.packages import archive_bytes

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class Api:
    client: httpx.AsyncClient
    admin: dict[str, str]
    alice: dict[str, str]
    store: object


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(
        data_dir=tmp_path / "data", api_token="admin-t", allow_nearest_python=True, _env_file=None
    )
    app = create_app(settings, run_scheduler=False)
    async with app.router.lifespan_context(app):
        store = app.state.platform.store
        alice = store.accounts.create_user("alice")
        token = store.accounts.create_token(alice.id)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=300
        ) as client:
            yield Api(
                client,
                {"Authorization": "Bearer admin-t"},
                {"Authorization": f"Bearer {token}"},
                store,
            )


PACKAGE = archive_bytes(EXAMPLES / "hello-world")


@pytest.mark.slow  # the push builds a real environment
async def test_owner_pushes_creates_the_model_and_same_content_same_id(api: Api) -> None:
    first = await api.client.post(
        "/v1/models/alice/hello/versions", content=PACKAGE, headers=api.alice
    )
    assert first.status_code == 201, first.text
    version = first.json()
    assert len(version["id"]) == 64
    assert version["openapi_schema"]["components"]["schemas"]["Input"]
    again = await api.client.post(
        "/v1/models/alice/hello/versions", content=PACKAGE, headers=api.alice
    )
    assert again.status_code == 200 and again.json()["id"] == version["id"]
    model = await api.client.get("/v1/models/alice/hello", headers=api.alice)
    assert model.json()["latest_version"]["id"] == version["id"]


async def test_pushing_under_another_name_is_refused(api: Api) -> None:
    # a model that does not exist reads like another owner's private one: 404 both
    r = await api.client.post("/v1/models/admin/x/versions", content=PACKAGE, headers=api.alice)
    assert r.status_code == 404
    r = await api.client.post("/v1/models/nobody/x/versions", content=PACKAGE, headers=api.alice)
    assert r.status_code == 404
    # another owner's public model: visible, not writable
    created = await api.client.post(
        "/v1/models",
        json={"owner": "admin", "name": "pub", "visibility": "public", "hardware": "cpu"},
        headers=api.admin,
    )
    assert created.status_code == 201
    r = await api.client.post("/v1/models/admin/pub/versions", content=PACKAGE, headers=api.alice)
    assert r.status_code == 403


@pytest.mark.slow  # the push builds a real environment
async def test_admin_may_push_under_any_name(api: Api) -> None:
    r = await api.client.post("/v1/models/acme/hello/versions", content=PACKAGE, headers=api.admin)
    assert r.status_code == 201, r.text


@pytest.mark.slow  # the push builds a real environment
async def test_same_package_on_another_model_is_a_version_of_that_model(api: Api) -> None:
    one = await api.client.post("/v1/models/alice/one/versions", content=PACKAGE, headers=api.alice)
    assert one.status_code == 201, one.text
    two = await api.client.post("/v1/models/alice/two/versions", content=PACKAGE, headers=api.alice)
    assert two.status_code == 201, two.text
    assert one.json()["id"] != two.json()["id"]


@pytest.mark.slow  # the push builds a real environment
async def test_ndjson_stream_ends_with_the_version_or_the_error(api: Api, tmp_path: Path) -> None:
    headers = {**api.alice, "Accept": "application/x-ndjson"}
    r = await api.client.post(
        "/v1/models/alice/streamed/versions", content=PACKAGE, headers=headers
    )
    assert r.status_code == 200
    events = [json.loads(line) for line in r.text.splitlines()]
    assert {e["type"] for e in events[:-1]} <= {"step", "log"}
    assert any(e["type"] == "step" for e in events)
    assert events[-1]["type"] == "version" and events[-1]["created"] is True

    bad = archive_bytes(_broken(tmp_path))
    r = await api.client.post("/v1/models/alice/broken/versions", content=bad, headers=headers)
    last = json.loads(r.text.splitlines()[-1])
    assert last["type"] == "error" and last["status"] == 400
    assert "could not be loaded" in last["detail"]


def _broken(tmp: Path) -> Path:
    project = tmp / "broken-project"
    project.mkdir()
    (project / "cog.yaml").write_text('predict: "predict.py:Nope"\n')
    (project / "predict.py").write_text("x = 1\n")
    return project


async def test_a_package_without_cog_yaml_is_refused(api: Api, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no model here")
    r = await api.client.post(
        "/v1/models/alice/empty/versions",
        content=archive_bytes(tmp_path / "empty"),
        headers=api.alice,
    )
    assert r.status_code == 422
    assert "cog.yaml" in r.json()["detail"]


@pytest.mark.slow  # the push builds a real environment
async def test_concurrent_pushes_of_one_package_make_one_version_per_model(api: Api) -> None:
    import asyncio

    for round_ in range(3):
        names = [f"race{round_}a", f"race{round_}a", f"race{round_}a", f"race{round_}b"]
        replies = await asyncio.gather(
            *(
                api.client.post(
                    f"/v1/models/alice/{n}/versions", content=PACKAGE, headers=api.alice
                )
                for n in names
            )
        )
        assert all(r.status_code in (200, 201) for r in replies), [r.text for r in replies]
        same = {r.json()["id"] for r in replies[:3]}
        assert len(same) == 1  # one model, one package: one version
        assert sorted(r.status_code for r in replies[:3]) == [200, 200, 201]
        assert replies[3].status_code == 201 and replies[3].json()["id"] not in same
        listed = await api.client.get(f"/v1/models/alice/{names[0]}/versions", headers=api.alice)
        assert [v["id"] for v in listed.json()["results"]] == list(same)
        model = await api.client.get(f"/v1/models/alice/{names[0]}", headers=api.alice)
        assert model.json()["latest_build"]["status"] == "succeeded"
