"""Bad requests get the right 4xx problem+json with a clear message, never a 500."""

from __future__ import annotations

import pytest
from api_v1_support import PRIVATE_VERSION, VERSION, Api


def assert_problem(response, status: int, needle: str = "") -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert needle.lower() in body["detail"].lower()
    return body


async def test_no_token_is_401(api: Api) -> None:
    assert_problem(await api.client.get("/v1/predictions"), 401, "authentication token")
    r = await api.client.get("/v1/account", headers={"Authorization": "Bearer nope"})
    assert_problem(r, 401, "valid")
    r = await api.client.get("/v1/account", headers={"Authorization": "Basic x"})
    assert_problem(r, 401, "Bearer")


async def test_bearer_and_token_schemes(api: Api) -> None:
    r = await api.client.get("/v1/account", headers=api.alice)
    assert r.json() == {
        "type": "user",
        "username": "alice",
        "name": "alice",
        "github_url": None,
        "avatar_url": None,
    }
    r = await api.client.get("/v1/account", headers=api.bob)  # "Token ..."
    assert r.status_code == 200 and r.json()["username"] == "bob"


async def test_malformed_json_is_400(api: Api) -> None:
    r = await api.client.post(
        "/v1/predictions", headers={**api.alice, "Content-Type": "application/json"}, content="{"
    )
    assert_problem(r, 400, "JSON")
    r = await api.client.post("/v1/predictions", headers=api.alice, json=[1])
    assert_problem(r, 400, "object")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"count": 2}, "text"),  # missing required
        ({"text": 5}, "text"),  # wrong type
        ({"text": "x", "count": "two"}, "count"),
        ({"text": "x", "count": 11}, "count"),  # out of range
    ],
)
async def test_invalid_input_is_422_naming_the_field(api: Api, payload: dict, field: str) -> None:
    r = await api.client.post(
        "/v1/predictions", headers=api.alice, json={"version": VERSION, "input": payload}
    )
    body = assert_problem(r, 422, field)
    assert [f["field"] for f in body["invalid_fields"]] == [field]
    assert body["invalid_fields"][0]["description"]


async def test_input_must_be_an_object(api: Api) -> None:
    r = await api.client.post("/v1/predictions", headers=api.alice, json={"version": VERSION})
    assert assert_problem(r, 422, "input")["invalid_fields"][0]["field"] == "input"
    r = await api.client.post(
        "/v1/predictions", headers=api.alice, json={"version": VERSION, "input": "hi"}
    )
    assert_problem(r, 422, "object")


async def test_unknown_input_fields_are_ignored(api: Api) -> None:
    # Replicate has always ignored inputs a model does not have (and Cog now does too).
    r = await api.client.post(
        "/v1/predictions",
        headers=api.alice,
        json={"version": VERSION, "input": {"text": "x", "guidance": 3}, "unknown_key": 1},
    )
    assert r.status_code == 201, r.text
    assert r.json()["input"] == {"text": "x"}


@pytest.mark.parametrize(
    "version",
    ["f" * 64, "alice/nothing", "nobody/hello", "alice/hello:" + "f" * 64, "not-a-version"],
)
async def test_unknown_version_or_model_is_404(api: Api, version: str) -> None:
    r = await api.client.post(
        "/v1/predictions", headers=api.alice, json={"version": version, "input": {"text": "x"}}
    )
    assert_problem(r, 404, "not found")


async def test_missing_version_is_422(api: Api) -> None:
    r = await api.client.post("/v1/predictions", headers=api.alice, json={"input": {}})
    assert_problem(r, 422, "version")


async def test_private_model_of_another_user_is_404(api: Api) -> None:
    for version in (PRIVATE_VERSION, "alice/secret", f"alice/secret:{PRIVATE_VERSION}"):
        r = await api.client.post(
            "/v1/predictions", headers=api.bob, json={"version": version, "input": {"text": "x"}}
        )
        assert_problem(r, 404)
    assert_problem(await api.client.get("/v1/models/alice/secret", headers=api.bob), 404)
    r = await api.client.post(
        "/v1/models/alice/secret/predictions", headers=api.bob, json={"input": {"text": "x"}}
    )
    assert_problem(r, 404)
    # the owner and the admin see it
    assert (await api.client.get("/v1/models/alice/secret", headers=api.alice)).status_code == 200
    assert (await api.client.get("/v1/models/alice/secret", headers=api.admin)).status_code == 200


async def test_bad_webhook_and_cancel_after(api: Api) -> None:
    base = {"version": VERSION, "input": {"text": "x"}}
    r = await api.client.post(
        "/v1/predictions", headers=api.alice, json={**base, "webhook": "ftp://x"}
    )
    assert_problem(r, 422, "webhook")
    r = await api.client.post(
        "/v1/predictions",
        headers=api.alice,
        json={**base, "webhook": "http://h/x", "webhook_events_filter": ["bogus"]},
    )
    assert_problem(r, 422, "webhook_events_filter")
    r = await api.client.post(
        "/v1/predictions", headers={**api.alice, "Cancel-After": "soon"}, json=base
    )
    assert_problem(r, 422, "duration")


async def test_other_users_file_is_refused_as_input(api: Api) -> None:
    r = await api.client.post(
        "/v1/files", headers=api.bob, files={"content": ("a.png", b"\x89PNG", "image/png")}
    )
    url = r.json()["urls"]["get"]
    r = await api.client.post(
        "/v1/predictions",
        headers=api.alice,
        json={"version": VERSION, "input": {"text": "x", "image": url}},
    )
    body = assert_problem(r, 422, "not yours")
    assert body["invalid_fields"][0]["field"] == "image"


async def test_unknown_routes_and_methods(api: Api) -> None:
    assert_problem(await api.client.get("/v1/nothing", headers=api.alice), 404)
    assert_problem(await api.client.put("/v1/predictions", headers=api.alice), 405)
    assert_problem(await api.client.get("/v1/predictions/zzz", headers=api.alice), 404)


async def test_model_create_errors(api: Api) -> None:
    r = await api.client.post("/v1/models", headers=api.alice, json={"owner": "alice"})
    body = assert_problem(r, 422)
    assert {f["field"] for f in body["invalid_fields"]} == {"name", "visibility", "hardware"}
    ok = {"owner": "bob", "name": "m", "visibility": "public", "hardware": "cpu"}
    assert_problem(await api.client.post("/v1/models", headers=api.alice, json=ok), 403)
    taken = {**ok, "owner": "alice", "name": "hello"}
    assert_problem(await api.client.post("/v1/models", headers=api.alice, json=taken), 409)


async def test_bad_list_params(api: Api) -> None:
    r = await api.client.get("/v1/predictions?created_after=yesterday", headers=api.alice)
    assert_problem(r, 400, "created_after")
    r = await api.client.get("/v1/predictions?cursor=%%%", headers=api.alice)
    assert_problem(r, 400, "cursor")
    r = await api.client.get("/v1/models?sort_by=name", headers=api.alice)
    assert_problem(r, 422, "sort_by")


JUNK_BODIES = [b"", b"{", b"[]", b'{"input": 5, "version": 7}', b"\xff\xfe"]


async def test_no_route_answers_500_to_junk(api: Api) -> None:
    from starlette.routing import Route

    from vendo.api.v1 import routes

    for route in routes():
        assert isinstance(route, Route)
        path = route.path.format(
            owner="alice", name="hello", id="x" * 26, slug="s", username="alice"
        )
        for method in sorted((route.methods or set()) - {"HEAD"}):
            for body in JUNK_BODIES:
                for headers in (
                    {},
                    api.alice,
                    {**api.alice, "Content-Type": "multipart/form-data"},
                ):
                    r = await api.client.request(method, path, content=body, headers=headers)
                    assert r.status_code < 500, (method, path, body, r.text)
                    if r.status_code >= 400:
                        assert r.headers["content-type"].startswith("application/problem+json")
