"""Tokens and accounts through /v1 (issue #11, items 1-2): tokens are self-service,
shown once, listed without the token, revoked from the next request on (cached auth
too); users and organizations are the admin's; an organization-scoped token acts as
the organization."""

from __future__ import annotations

import pytest
from api_v1_support import Api

PROBLEM = "application/problem+json"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_is_shown_once_listed_without_it_and_revoked_at_once(api: Api) -> None:
    c = api.client
    r = await c.post("/v1/tokens", headers=api.alice, json={"name": "laptop"})
    assert r.status_code == 201, r.text
    made = r.json()
    token = made.pop("token")
    assert token.startswith("r8_") and made["name"] == "laptop" and made["organization"] is None
    # used once: the auth read is cached now
    assert (await c.get("/v1/account", headers=_bearer(token))).json()["username"] == "alice"
    listed = (await c.get("/v1/tokens", headers=api.alice)).json()["results"]
    mine = [t for t in listed if t["id"] == made["id"]]
    assert len(mine) == 1 and "token" not in mine[0] and token not in str(listed)
    assert mine[0]["last_used_at"] is not None
    # nobody else sees or revokes it: it reads as absent
    other = await c.delete(f"/v1/tokens/{made['id']}", headers=api.bob)
    assert other.status_code == 404 and other.headers["content-type"] == PROBLEM
    assert made["id"] not in [
        t["id"] for t in (await c.get("/v1/tokens", headers=api.bob)).json()["results"]
    ]
    assert (await c.delete(f"/v1/tokens/{made['id']}", headers=api.alice)).status_code == 204
    gone = await c.get("/v1/account", headers=_bearer(token))
    assert gone.status_code == 401 and gone.headers["content-type"] == PROBLEM
    assert made["id"] not in [
        t["id"] for t in (await c.get("/v1/tokens", headers=api.alice)).json()["results"]
    ]
    again = await c.delete(f"/v1/tokens/{made['id']}", headers=api.alice)
    assert again.status_code == 404


async def test_an_organization_token_acts_as_the_organization(api: Api) -> None:
    c = api.client
    org = await c.post(
        "/v1/organizations", headers=api.admin, json={"name": "acme", "owner": "alice"}
    )
    assert org.status_code == 201, org.text
    assert org.json()["members"] == [{"username": "alice", "role": "owner"}]
    # bob is not a member: he cannot make a token for it
    refused = await c.post("/v1/tokens", headers=api.bob, json={"organization": "acme"})
    assert refused.status_code == 404 and refused.headers["content-type"] == PROBLEM
    r = await c.post("/v1/tokens", headers=api.alice, json={"organization": "acme"})
    assert r.status_code == 201 and r.json()["organization"] == "acme"
    scoped = _bearer(r.json()["token"])
    account = (await c.get("/v1/account", headers=scoped)).json()
    assert account["type"] == "organization" and account["username"] == "acme"
    # a token made through it is scoped as well: scoping never widens
    child = await c.post("/v1/tokens", headers=scoped, json={"name": "ci"})
    assert child.json()["organization"] == "acme"
    # it sees only the tokens scoped to acme; alice's own are out of its reach
    listed = (await c.get("/v1/tokens", headers=scoped)).json()["results"]
    assert {t["organization"] for t in listed} == {"acme"}
    own = (await c.get("/v1/tokens", headers=api.alice)).json()["results"]
    unscoped = [t["id"] for t in own if t["organization"] is None]
    assert (await c.delete(f"/v1/tokens/{unscoped[0]}", headers=scoped)).status_code == 404
    # what it makes belongs to acme
    made = await c.post(
        "/v1/files", headers=scoped, files={"content": ("a.txt", b"x", "text/plain")}
    )
    assert made.status_code == 201
    acme = api.platform.store.accounts.named("acme", "organization")
    assert api.platform.store.files.get(made.json()["id"]).owner_id == acme.id  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/users", None),
        ("POST", "/v1/users", {"username": "eve"}),
        ("GET", "/v1/organizations", None),
        ("POST", "/v1/organizations", {"name": "acme", "owner": "bob"}),
        ("POST", "/v1/organizations/acme/members", {"username": "bob"}),
    ],
)
async def test_accounts_are_the_admins(api: Api, method: str, path: str, body: object) -> None:
    r = await api.client.request(method, path, headers=api.bob, json=body)
    assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
    assert "only the admin" in r.json()["detail"]


async def test_the_admin_adds_a_person_who_can_then_work(api: Api) -> None:
    c = api.client
    r = await c.post("/v1/users", headers=api.admin, json={"username": "erin", "name": "Erin"})
    assert r.status_code == 201, r.text
    erin = _bearer(r.json()["token"])
    assert (await c.get("/v1/account", headers=erin)).json() == {
        "type": "user",
        "username": "erin",
        "name": "Erin",
        "github_url": None,
        "avatar_url": None,
    }
    users = (await c.get("/v1/users", headers=api.admin)).json()["results"]
    assert {u["username"] for u in users} == {"admin", "alice", "bob", "erin"}
    assert (
        await c.post("/v1/organizations", headers=api.admin, json={"name": "lab", "owner": "bob"})
    ).status_code == 201
    added = await c.post(
        "/v1/organizations/lab/members", headers=api.admin, json={"username": "erin"}
    )
    assert added.json()["members"] == [
        {"username": "bob", "role": "owner"},
        {"username": "erin", "role": "member"},
    ]
    taken = await c.post("/v1/users", headers=api.admin, json={"username": "erin"})
    assert taken.status_code == 409


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/users", {"username": "no spaces"}, "username"),
        # its model pages would be hidden behind the server's own /p/{id} and /v1/...
        ("/v1/users", {"username": "p"}, "username"),
        ("/v1/organizations", {"name": "V1", "owner": "alice"}, "name"),
        ("/v1/users", {"username": "x", "admin": "yes"}, "admin"),
        ("/v1/users", {"username": "x", "role": "owner"}, "role"),
        ("/v1/organizations", {"name": "lab"}, "owner"),
        ("/v1/organizations/lab/members", {"username": "bob", "role": "boss"}, "role"),
        ("/v1/tokens", {"name": 5}, "name"),
    ],
)
async def test_bad_account_input_names_the_field(
    api: Api, path: str, body: object, field: str
) -> None:
    r = await api.client.post(path, headers=api.admin, json=body)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["invalid_fields"]] == [field]


async def test_deleting_an_organizations_model_takes_an_owner(api: Api) -> None:
    store = api.platform.store
    acme = store.accounts.create_organization("acme", "alice")
    store.accounts.add_member("acme", "bob")  # a member, not an owner
    store.catalog.create_model(acme.id, "draft", visibility="private")
    bob_sees = await api.client.get("/v1/models/acme/draft", headers=api.bob)
    assert bob_sees.status_code == 200
    refused = await api.client.delete("/v1/models/acme/draft", headers=api.bob)
    assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM
    assert "only an owner of acme" in refused.json()["detail"]
    deleted = await api.client.delete("/v1/models/acme/draft", headers=api.alice)
    assert deleted.status_code == 204
