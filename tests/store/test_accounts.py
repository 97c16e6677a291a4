"""Accounts in the store (issue #11): organizations and roles, scoped and revoked
tokens, last_used_at writes, and a revocation by another process beating the read
cache. Real SQLite/PostgreSQL stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from vendo.errors import Conflict, InvalidInput, NotFound
from vendo.store import MISS, Store, TokenRow, hash_token


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url, cache_ttl=60)
    yield s
    s.close()


def test_organizations_members_and_roles(store: Store) -> None:
    accounts = store.accounts
    alice, bob = accounts.create_user("alice"), accounts.create_user("bob")
    acme = accounts.create_organization("acme", "alice")
    assert acme.type == "organization"
    accounts.add_member("acme", "bob")
    assert [(u.username, r) for u, r in accounts.members(acme.id)] == [
        ("alice", "owner"),
        ("bob", "member"),
    ]
    accounts.add_member("acme", "bob", "owner")  # again: the role changes
    assert dict((u.username, r) for u, r in accounts.members(acme.id))["bob"] == "owner"
    with pytest.raises(InvalidInput):
        accounts.add_member("acme", "bob", "boss")
    with pytest.raises(NotFound):
        accounts.add_member("alice", "bob")  # a user is not an organization
    with pytest.raises(NotFound):
        accounts.create_organization("lab", "acme")  # an organization owns no organization
    with pytest.raises(Conflict):
        accounts.create_organization("acme", "alice")
    found = accounts.authenticate(hash_token(accounts.create_token(bob.id)))
    assert found is not None and dict(found.roles) == {acme.id: "owner"}
    assert found.organization is None and alice.id not in found.roles


def test_a_scoped_token_needs_a_membership(store: Store) -> None:
    accounts = store.accounts
    alice, bob = accounts.create_user("alice"), accounts.create_user("bob")
    acme = accounts.create_organization("acme", "alice")
    with pytest.raises(NotFound):
        accounts.issue_token(bob.id, organization_id=acme.id)
    row, token = accounts.issue_token(alice.id, name="ci", organization_id=acme.id)
    found = accounts.authenticate(hash_token(token))
    assert found is not None and found.organization is not None
    assert found.organization.username == "acme" and found.user.id == alice.id
    with store.read() as s:  # only the hash is stored
        assert s.scalar(sa.select(TokenRow.token_hash).where(TokenRow.id == row.id)) == (
            hash_token(token)
        )
    assert [(t.name, org) for t, org in accounts.tokens(alice.id)] == [("ci", "acme")]


def test_a_revoked_token_authenticates_no_more(store: Store) -> None:
    accounts = store.accounts
    alice = accounts.create_user("alice")
    row, token = accounts.issue_token(alice.id)
    key = hash_token(token)
    assert store.cached.caller(key) is not None
    accounts.revoke_token(row.id)
    assert store.cached.caller.peek(key) is MISS  # the cache was cleared
    assert store.cached.caller(key) is None
    assert accounts.tokens(alice.id) == []
    with pytest.raises(NotFound):
        accounts.revoke_token(row.id)


def test_last_used_is_written_at_most_once_a_minute(store: Store) -> None:
    _, token = store.accounts.ensure_admin(None)
    assert token is not None
    found = store.accounts.authenticate(hash_token(token))
    assert found is not None and found.token.last_used_at is None
    assert store.accounts.due(found.token.id)
    assert store.accounts.used(found.token.id) is True
    assert not store.accounts.due(found.token.id)
    assert store.accounts.used(found.token.id) is False  # no second write
    with store.read() as s:
        assert s.get_one(TokenRow, found.token.id).last_used_at is not None


def test_a_revocation_by_another_process_beats_the_cache(tmp_path: Path) -> None:
    """Two stores on one data dir, as `vendo serve` and `vendo tokens revoke` are: the
    server's cached auth is forgotten on its next sync_cache (one stat)."""
    data = tmp_path / "data"
    data.mkdir()
    server = Store.from_settings(data, None, cache_ttl=3600)
    command = Store.from_settings(data, None)  # the command line keeps no cache
    try:
        alice = command.accounts.create_user("alice")
        row, token = command.accounts.issue_token(alice.id)
        key = hash_token(token)
        server.sync_cache()
        assert server.cached.caller(key) is not None
        server.sync_cache()
        assert server.cached.caller.peek(key) is not MISS  # nothing changed: kept
        command.accounts.revoke_token(row.id)
        assert server.cached.caller.peek(key) is not MISS  # not seen yet...
        server.sync_cache()  # ...until the next request looks
        assert server.cached.caller.peek(key) is MISS
        assert server.cached.caller(key) is None
    finally:
        server.close()
        command.close()
