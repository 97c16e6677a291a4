"""The tenancy matrix (issue #11): every kind of caller against every kind of record,
on SQLite and PostgreSQL. A caller reaches what the policy says
(src/vendo/api/v1/policy.py), and nothing else: a record out of reach answers 404 (or
403 where the caller may see but not change it) as problem+json, never shows in a
list, and no denial says more than that it was refused.

The matrix is data: ``CALLERS`` (who asks) and the ``Row``s that ``_world`` makes (a
record and the requests that touch it). A new kind of record (usage, deployments) is
one more ``Row``, made in ``_world`` and given probes; each caller's test walks every
row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from api_v1_support import ADMIN_TOKEN, PRIVATE_VERSION, SCHEMA, Api

from vendo.store import Store

PROBLEM = "application/problem+json"
ORG_VERSION = "ef" * 32
OWN_TRAINER = "77" * 32  # a second version of alice/secret, trainable
# the versions that train take the same fields as they predict with
TRAINER_SCHEMA = {
    **SCHEMA,
    "components": {
        "schemas": {
            **SCHEMA["components"]["schemas"],
            "TrainingInput": SCHEMA["components"]["schemas"]["Input"],
        }
    },
}
TRAINER_CONFIG = {"predict": "predict.py:Predictor", "train": "train.py:train"}


@dataclass(frozen=True)
class Probe:
    """One request touching a record: what it answers when allowed."""

    method: str
    path: str
    ok: int = 200
    json: Any = None
    # 403 rather than 404 when the caller may see the record but not do this
    forbidden_if_visible: bool = False


@dataclass(frozen=True)
class Row:
    """A record of the matrix: its owner, who may see it, and the requests to try."""

    name: str
    owner: str  # "acme" (the organization) or "alice" (a user's own)
    # what names the record in its probes (``acme/plans``, an id): a denial must read
    # exactly as the same request about a record that does not exist
    ident: str
    public: bool = False  # everyone may see it (never change it)
    probes: tuple[Probe, ...] = ()
    # (list path, what identifies the record in a result): the record must show in the
    # list exactly when ``listed_for`` says so, and never to a caller out of reach
    listing: tuple[str, Callable[[dict[str, Any]], Any], Any] | None = None
    listed_for: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Caller:
    name: str
    reach: frozenset[str]  # the owners whose records it may see and change
    revoked: bool = False


CALLERS = {
    c.name: c
    for c in (
        Caller("admin", frozenset({"acme", "alice"})),
        Caller("alice", frozenset({"acme", "alice"})),  # acme's owner, unscoped
        Caller("alice@acme", frozenset({"acme"})),  # scoped: acme's records only
        Caller("carol", frozenset({"acme"})),  # acme's member
        Caller("dave", frozenset()),  # in no organization
        Caller("revoked", frozenset(), revoked=True),  # carol's token, revoked
    )
}


@dataclass
class World:
    api: Api
    tokens: dict[str, str]  # caller -> token
    rows: list[Row]

    def headers(self, caller: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[caller]}"}


def _model_row(name: str, owner: str, model: str, version: str, public: bool = False) -> Row:
    base = f"/v1/models/{owner}/{model}"
    return Row(
        name,
        owner,
        f"{owner}/{model}",
        public=public,
        probes=(
            Probe("GET", base),
            Probe("GET", f"{base}/versions"),
            Probe("GET", f"{base}/versions/{version}"),
            Probe("GET", f"{base}/readme"),
            Probe("GET", f"{base}/examples"),
            Probe("POST", f"{base}/predictions", 201, {"input": {"text": "x"}}),
            Probe("POST", "/v1/predictions", 201, {"version": version, "input": {"text": "x"}}),
            Probe("PATCH", base, json={"description": "changed"}, forbidden_if_visible=True),
        ),
        listing=("/v1/models", lambda m: f"{m['owner']}/{m['name']}", f"{owner}/{model}"),
        listed_for=frozenset(
            c.name for c in CALLERS.values() if not c.revoked and (public or owner in c.reach)
        ),
    )


async def _make(api: Api, headers: dict[str, str], version: str) -> tuple[str, str, str]:
    """A prediction, an uploaded file and a training (of ``version`` into its own
    model) made by the caller of ``headers``."""
    r = await api.client.post(
        "/v1/predictions", headers=headers, json={"version": version, "input": {"text": "x"}}
    )
    assert r.status_code == 201, r.text
    f = await api.client.post(
        "/v1/files", headers=headers, files={"content": ("a.txt", b"secret", "text/plain")}
    )
    assert f.status_code == 201, f.text
    model = r.json()["model"]
    t = await api.client.post(
        f"/v1/models/{model}/versions/{version}/trainings",
        headers=headers,
        json={"destination": model, "input": {"text": "x"}},
    )
    assert t.status_code == 201, t.text
    return r.json()["id"], f.json()["id"], t.json()["id"]


async def _deploy(api: Api, headers: dict[str, str], model: str, version: str) -> str:
    """A deployment of ``model`` made by the caller of ``headers``: its owner/name."""
    r = await api.client.post(
        "/v1/deployments",
        headers=headers,
        json={
            "name": "prod",
            "model": model,
            "version": version,
            "hardware": "cpu",
            "min_instances": 0,
            "max_instances": 1,
        },
    )
    assert r.status_code == 201, r.text
    return f"{r.json()['owner']}/prod"


def _account_rows(owner: str, deployment: str, listed_for: set[str]) -> list[Row]:
    """The records of an account as such: its deployment, its usage and credit."""
    base = f"/v1/deployments/{deployment}"
    return [
        Row(
            f"deployment of {owner}",
            owner,
            deployment,
            probes=(
                Probe("GET", base),
                Probe("POST", f"{base}/predictions", 201, {"input": {"text": "x"}}),
                Probe("PATCH", base, json={"max_instances": 2}),
            ),
            listing=("/v1/deployments", lambda d: f"{d['owner']}/{d['name']}", deployment),
            listed_for=frozenset(listed_for),
        ),
        Row(
            f"usage of {owner}",
            owner,
            owner,
            probes=(
                Probe("GET", f"/v1/usage?account={owner}"),
                Probe("GET", f"/v1/accounts/{owner}/credit"),
            ),
        ),
    ]


def _owned_rows(owner: str, made: tuple[str, str, str], listed_for: set[str]) -> list[Row]:
    prediction, file, training = made
    return [
        Row(
            f"prediction of {owner}",
            owner,
            prediction,
            probes=(
                Probe("GET", f"/v1/predictions/{prediction}"),
                Probe("POST", f"/v1/predictions/{prediction}/cancel"),
            ),
            listing=("/v1/predictions", lambda p: p["id"], prediction),
            listed_for=frozenset(listed_for),
        ),
        Row(
            f"file of {owner}",
            owner,
            file,
            probes=(Probe("GET", f"/v1/files/{file}"),),
            listing=("/v1/files", lambda f: f["id"], file),
            listed_for=frozenset(listed_for),
        ),
        Row(
            f"training of {owner}",
            owner,
            training,
            probes=(
                Probe("GET", f"/v1/trainings/{training}"),
                Probe("POST", f"/v1/trainings/{training}/cancel"),
            ),
            listing=("/v1/trainings", lambda t: t["id"], training),
            listed_for=frozenset(listed_for),
        ),
    ]


async def _world(api: Api) -> World:
    """acme (owner alice, member carol), dave outside it; a private model, a
    prediction, a file and a training of acme's and of alice's own; a public model of
    acme's."""
    store: Store = api.platform.store
    accounts = store.accounts
    tokens = {"admin": ADMIN_TOKEN, "alice": api.alice["Authorization"].split()[1]}
    for name in ("carol", "dave"):
        tokens[name] = accounts.create_token(accounts.create_user(name).id)
    acme = accounts.create_organization("acme", "alice")
    accounts.add_member("acme", "carol")
    alice = accounts.named("alice", "user")
    tokens["alice@acme"] = accounts.issue_token(alice.id, organization_id=acme.id)[1]
    carol = accounts.named("carol", "user")
    revoked, tokens["revoked"] = accounts.issue_token(carol.id, name="old")
    for public, model, version in ((False, "plans", ORG_VERSION), (True, "demo", "12" * 32)):
        row = store.catalog.create_model(
            acme.id, model, visibility="public" if public else "private"
        )
        store.catalog.create_version(
            row.id, version, openapi_schema=TRAINER_SCHEMA, config=TRAINER_CONFIG
        )
    secret = store.catalog.model("alice", "secret")
    assert secret is not None
    store.catalog.create_version(
        secret.id, OWN_TRAINER, openapi_schema=TRAINER_SCHEMA, config=TRAINER_CONFIG
    )
    world = World(api, tokens, [])
    # the revoked token worked (and was cached) before it was revoked
    assert (await api.client.get("/v1/account", headers=world.headers("revoked"))).is_success
    r = await api.client.delete(f"/v1/tokens/{revoked.id}", headers=world.headers("carol"))
    assert r.status_code == 204
    acme_made = await _make(api, world.headers("alice@acme"), ORG_VERSION)
    own_made = await _make(api, world.headers("alice"), OWN_TRAINER)
    acme_deployment = await _deploy(api, world.headers("alice@acme"), "acme/plans", ORG_VERSION)
    own_deployment = await _deploy(api, world.headers("alice"), "alice/secret", PRIVATE_VERSION)
    world.rows = [
        _model_row("acme's private model", "acme", "plans", ORG_VERSION),
        _model_row("acme's public model", "acme", "demo", "12" * 32, public=True),
        _model_row("alice's private model", "alice", "secret", PRIVATE_VERSION),
        # lists show the records of the account the token acts as
        *_owned_rows("acme", acme_made, {"alice@acme"}),
        *_owned_rows("alice", own_made, {"alice"}),
        *_account_rows("acme", acme_deployment, {"alice@acme"}),
        *_account_rows("alice", own_deployment, {"alice"}),
    ]
    return world


def _ghost(ident: str) -> str:
    """A name of the same shape as ``ident`` that names nothing."""
    if "/" in ident:
        return ident + "-ghost"
    return "z" * len(ident)


async def _leaks(world: World, who: Caller, row: Row, probe: Probe, denial: Any) -> str | None:
    """Whether a denial tells the record exists: the same request about a record that
    does not exist must answer the same status and, but for the name, the same words."""
    ghost = _ghost(row.ident)
    body = None
    if probe.json is not None:
        body = {k: ghost if v == row.ident else v for k, v in probe.json.items()}
    r = await world.api.client.request(
        probe.method,
        probe.path.replace(row.ident, ghost),
        headers=world.headers(who.name),
        json=body,
    )
    told = denial.json().get("detail")
    if (
        r.status_code != denial.status_code
        or r.json().get("detail", "").replace(ghost, row.ident) != told
    ):
        return f"{probe.method} {probe.path}: {denial.status_code} {told!r} but {r.text}"
    return None


async def _check(world: World, who: Caller, row: Row) -> list[str]:
    """What went wrong for ``who`` on ``row`` (empty: all as the policy says)."""
    failures = []
    client, headers = world.api.client, world.headers(who.name)
    within = row.owner in who.reach
    visible = within or row.public
    for probe in row.probes:
        r = await client.request(probe.method, probe.path, headers=headers, json=probe.json)
        allowed = within or (row.public and not probe.forbidden_if_visible)
        if who.revoked:
            expected = {401}
        elif allowed:
            expected = {probe.ok}
        else:
            expected = {403} if visible and probe.forbidden_if_visible else {404}
        if r.status_code not in expected:
            failures.append(f"{probe.method} {probe.path}: {r.status_code}, wanted {expected}")
        elif not r.is_success:
            if r.headers.get("content-type") != PROBLEM:
                failures.append(f"{probe.method} {probe.path}: not problem+json")
            elif not visible and not who.revoked:
                failures.append(await _leaks(world, who, row, probe, r) or "")
    if row.listing is not None and not who.revoked:
        path, key, value = row.listing
        r = await client.get(path, headers=headers)
        listed = value in [key(item) for item in r.json()["results"]]
        if listed != (who.name in row.listed_for):
            failures.append(f"GET {path}: listed={listed}")
    return failures


@pytest.mark.parametrize("caller", sorted(CALLERS))
async def test_tenancy_matrix(api: Api, caller: str) -> None:
    world = await _world(api)
    who = CALLERS[caller]
    failures = {row.name: [f for f in await _check(world, who, row) if f] for row in world.rows}
    assert not {k: v for k, v in failures.items() if v}, failures
