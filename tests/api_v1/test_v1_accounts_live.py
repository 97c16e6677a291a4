"""Accounts end to end (issue #11): ``vendo users/orgs/tokens`` as a person types them,
against the data dir of a running ``vendo serve``, and the official ``replicate``
client working with each kind of token: a user's, an organization-scoped one, the
admin's. A revocation by the command line stops the running server's cached token on
its next request. Real child processes; the model runs in a real runner child."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from serve_support import clean_env, vendo

replicate = pytest.importorskip("replicate")

from api_v1_support import LiveServer, add_local_version  # noqa: E402
from replicate.exceptions import ReplicateError  # noqa: E402

FIXTURES = Path(__file__).parents[1] / "fixtures"
ADMIN = "live-admin-token"
VERSION = "9a" * 32


@dataclass
class Live:
    url: str
    data: Path
    env: dict[str, str]
    tokens: dict[str, str]  # alice, alice@acme, dave


def _cli(live_env: dict[str, str], cwd: Path, *args: str) -> str:
    done = vendo(*args, cwd=cwd, env=live_env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _private_echo(data: Path) -> None:
    """acme's private model ``echo``, running tests/fixtures/plt_echo on this
    interpreter (no environment build)."""
    from vendo.store import Store

    store = Store.from_settings(data, None)
    try:
        acme = store.accounts.named("acme", "organization")
        model = store.catalog.create_model(acme.id, "echo", visibility="private")
        add_local_version(store, model.id, VERSION, concurrency_max=1)
    finally:
        store.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    work = tmp_path_factory.mktemp("accounts")
    data = work / "data"
    env = clean_env(VENDO_DATA_DIR=str(data))
    tokens = {"alice": _cli(env, work, "users", "create", "alice")}
    tokens["dave"] = _cli(env, work, "users", "create", "dave")
    _cli(env, work, "orgs", "create", "acme", "--owner", "alice")
    tokens["alice@acme"] = _cli(env, work, "tokens", "create", "alice", "--org", "acme")
    _private_echo(data)
    server = LiveServer(data, work / "server.log", ADMIN)
    server.start()
    try:
        yield Live(server.url, data, env, tokens)
    finally:
        server.stop()


def test_users_list_and_tokens_list_show_no_token(live: Live, tmp_path: Path) -> None:
    users = _cli(live.env, tmp_path, "users", "list")
    assert [line.split()[0] for line in users.splitlines()[1:]] == ["alice", "dave", "admin"]
    listed = _cli(live.env, tmp_path, "tokens", "list", "alice")
    assert "acme" in listed and not any(t in listed for t in live.tokens.values())


@pytest.mark.parametrize("who", ["alice", "alice@acme", "admin"])
def test_the_official_client_runs_the_organizations_model(
    live: Live, who: str, replicate_client: object
) -> None:
    token = ADMIN if who == "admin" else live.tokens[who]
    client = replicate_client(token, live.url)  # type: ignore[operator]
    account = client.accounts.current()
    assert (account.type, account.username) == {
        "alice": ("user", "alice"),
        "alice@acme": ("organization", "acme"),
        "admin": ("user", "admin"),
    }[who]
    assert client.models.get("acme/echo").visibility == "private"
    assert client.run(f"acme/echo:{VERSION}", input={"text": who}) == who
    prediction = client.predictions.create(version=VERSION, input={"text": "again"})
    prediction.wait()
    assert prediction.status == "succeeded" and prediction.output == "again"


def test_an_outsider_gets_404_and_a_revoked_token_401(
    live: Live, tmp_path: Path, replicate_client: object
) -> None:
    dave = replicate_client(live.tokens["dave"], live.url)  # type: ignore[operator]
    assert dave.accounts.current().username == "dave"  # cached by the server now
    with pytest.raises(ReplicateError) as denied:
        dave.models.get("acme/echo")
    assert denied.value.status == 404
    with pytest.raises(ReplicateError) as denied:
        dave.run(f"acme/echo:{VERSION}", input={"text": "x"})
    assert denied.value.status == 404
    token_id = _cli(live.env, tmp_path, "tokens", "list", "dave").splitlines()[1].split()[0]
    _cli(live.env, tmp_path, "tokens", "revoke", token_id)
    with pytest.raises(ReplicateError) as refused:
        dave.accounts.current()
    assert refused.value.status == 401
