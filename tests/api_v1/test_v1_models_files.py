from __future__ import annotations

import json

from api_v1_support import VERSION, Api

MODEL_KEYS = {
    "url",
    "owner",
    "name",
    "description",
    "visibility",
    "github_url",
    "paper_url",
    "license_url",
    "weights_url",
    "cover_image_url",
    "run_count",
    "is_official",
    "default_example",
    "latest_version",
}


async def test_model_lifecycle(api: Api) -> None:
    c = api.client
    body = {"owner": "alice", "name": "new-model", "visibility": "private", "hardware": "cpu"}
    r = await c.post("/v1/models", headers=api.alice, json={**body, "description": "d"})
    assert r.status_code == 201, r.text
    model = r.json()
    assert set(model) >= MODEL_KEYS
    assert model["url"] == "http://testserver/alice/new-model"
    assert model["latest_version"] is None and model["description"] == "d"
    r = await c.patch(
        "/v1/models/alice/new-model",
        headers=api.alice,
        json={"readme": "# Readme", "github_url": "https://github.com/a/b"},
    )
    assert r.status_code == 200 and r.json()["github_url"] == "https://github.com/a/b"
    readme = await c.get("/v1/models/alice/new-model/readme", headers=api.alice)
    assert readme.text == "# Readme" and readme.headers["content-type"].startswith("text/")
    bad = await c.patch("/v1/models/alice/new-model", headers=api.alice, json={"name": "x"})
    assert bad.status_code == 422
    # bob can neither see nor change it
    assert (
        await c.patch("/v1/models/alice/new-model", headers=api.bob, json={})
    ).status_code == 404
    assert (await c.delete("/v1/models/alice/new-model", headers=api.bob)).status_code == 404
    assert (await c.delete("/v1/models/alice/new-model", headers=api.alice)).status_code == 204
    assert (await c.get("/v1/models/alice/new-model", headers=api.alice)).status_code == 404


async def test_delete_rules(api: Api) -> None:
    c = api.client
    r = await c.delete("/v1/models/alice/hello", headers=api.alice)  # public, has a version
    assert r.status_code == 409
    assert (await c.delete("/v1/models/alice/hello", headers=api.bob)).status_code == 403
    assert (await c.delete("/v1/models/alice/secret", headers=api.alice)).status_code == 409


async def test_versions(api: Api) -> None:
    c = api.client
    r = await c.get("/v1/models/alice/hello/versions", headers=api.bob)
    assert r.status_code == 200
    versions = r.json()["results"]
    assert [v["id"] for v in versions] == [VERSION]
    assert set(versions[0]) == {"id", "created_at", "cog_version", "openapi_schema"}
    one = await c.get(f"/v1/models/alice/hello/versions/{VERSION}", headers=api.bob)
    assert one.json()["cog_version"] == "0.13.7"
    model = (await c.get("/v1/models/alice/hello", headers=api.bob)).json()
    assert model["latest_version"]["id"] == VERSION
    assert (
        await c.delete(f"/v1/models/alice/hello/versions/{VERSION}", headers=api.bob)
    ).status_code == 403
    r = await c.delete(f"/v1/models/alice/hello/versions/{VERSION}", headers=api.alice)
    assert r.status_code == 204
    missing = await c.get(f"/v1/models/alice/hello/versions/{VERSION}", headers=api.alice)
    assert missing.status_code == 404


async def test_admin_creates_models_under_any_owner(api: Api) -> None:
    body = {"owner": "acme", "name": "m", "visibility": "public", "hardware": "cpu"}
    r = await api.client.post("/v1/models", headers=api.admin, json=body)
    assert r.status_code == 201 and r.json()["owner"] == "acme"


async def test_list_and_search(api: Api) -> None:
    c = api.client
    await c.patch("/v1/models/alice/hello", headers=api.alice, json={"description": "Greets cats"})
    names = [m["name"] for m in (await c.get("/v1/models", headers=api.bob)).json()["results"]]
    assert names == ["hello"]
    mine = (
        await c.get(
            "/v1/models?sort_by=latest_version_created_at&sort_direction=asc", headers=api.alice
        )
    ).json()
    assert {m["name"] for m in mine["results"]} == {"hello", "secret"}
    for body in ("cats", json.dumps("cats")):  # plain and JSON-quoted (the JS client)
        r = await c.request(
            "QUERY", "/v1/models", headers={**api.bob, "Content-Type": "text/plain"}, content=body
        )
        assert r.status_code == 200, r.text
        assert [m["name"] for m in r.json()["results"]] == ["hello"]
    r = await c.request("QUERY", "/v1/models", headers=api.bob, content="secret")
    assert r.json()["results"] == []


async def test_files(api: Api) -> None:
    c = api.client
    r = await c.post(
        "/v1/files",
        headers=api.alice,
        files={"content": ("hello.txt", b"hello", "text/plain")},
        data={"metadata": json.dumps({"k": "v"})},
    )
    assert r.status_code == 201, r.text
    f = r.json()
    assert f["name"] == "hello.txt" and f["size"] == 5 and f["content_type"] == "text/plain"
    assert f["etag"] == f["checksums"]["md5"] == "5d41402abc4b2a76b9719d911017c592"
    assert f["metadata"] == {"k": "v"} and f["expires_at"] and f["created_at"]
    assert f["urls"] == {"get": f"http://testserver/v1/files/{f['id']}"}
    # metadata as a JSON file part (the JS client's Blob)
    r2 = await c.post(
        "/v1/files",
        headers=api.alice,
        files={
            "content": ("b.bin", b"\x00\x01", "application/octet-stream"),
            "metadata": ("blob", b'{"a": 1}', "application/json"),
        },
    )
    assert r2.status_code == 201 and r2.json()["metadata"] == {"a": 1}
    assert (await c.get(f["urls"]["get"], headers=api.alice)).json() == f
    assert (await c.get(f["urls"]["get"], headers=api.bob)).status_code == 404
    listed = (await c.get("/v1/files", headers=api.alice)).json()["results"]
    assert {x["id"] for x in listed} == {f["id"], r2.json()["id"]}
    assert (await c.get("/v1/files", headers=api.bob)).json()["results"] == []
    path = api.platform.storage.signed_path(f["id"], "alice")
    got = await c.get(path)
    assert got.content == b"hello" and got.headers["access-control-allow-origin"] == "*"
    assert (await c.delete(f["urls"]["get"], headers=api.bob)).status_code == 404
    assert (await c.delete(f["urls"]["get"], headers=api.alice)).status_code == 204
    assert (await c.get(f["urls"]["get"], headers=api.alice)).status_code == 404
    assert (await c.get(path)).status_code == 404
    missing = await c.post("/v1/files", headers=api.alice, files={"other": ("a", b"x")})
    assert missing.status_code == 422


async def test_account_hardware_webhook_secret(api: Api) -> None:
    hw = (await api.client.get("/v1/hardware", headers=api.bob)).json()
    assert isinstance(hw, list) and {"sku": "cpu", "name": "CPU"} in hw
    key = (await api.client.get("/v1/webhooks/default/secret", headers=api.bob)).json()["key"]
    assert key.startswith("whsec_") and key.count("_") == 1
    assert len(__import__("base64").b64decode(key[6:])) == 32
    again = (await api.client.get("/v1/webhooks/default/secret", headers=api.bob)).json()["key"]
    assert again == key
    other = (await api.client.get("/v1/webhooks/default/secret", headers=api.alice)).json()["key"]
    assert other != key


async def test_collections_and_search(api: Api) -> None:
    r = await api.client.get("/v1/collections", headers=api.bob)
    assert r.json() == {"next": None, "previous": None, "results": []}
    assert (await api.client.get("/v1/collections/x", headers=api.bob)).status_code == 404
    r = await api.client.get("/v1/search", params={"query": "hello"}, headers=api.bob)
    body = r.json()
    assert body["query"] == "hello" and body["collections"] == [] and body["pages"] == []
    assert [m["model"]["name"] for m in body["models"]] == ["hello"]
    r = await api.client.get("/v1/search", params={"query": "secret"}, headers=api.bob)
    assert r.json()["models"] == []
    assert (await api.client.get("/v1/search", headers=api.bob)).status_code == 422
