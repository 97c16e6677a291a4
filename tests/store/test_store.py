from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from vendo.errors import Conflict
from vendo.store import (
    CANCELED,
    PROCESSING,
    SUCCEEDED,
    PredictionRow,
    Store,
    hash_token,
    new_id,
    utcnow,
)
from vendo.store.tables import Base, TokenRow

VERSION = "a" * 64


@pytest.fixture
def store(db_url: str):
    s = Store.open(db_url)
    yield s
    s.close()


def test_migrations_match_the_tables(store: Store) -> None:
    with store.engines.writer.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_open_twice_is_idempotent(db_url: str) -> None:
    Store.open(db_url).close()
    Store.open(db_url).close()


def test_admin_token_is_stored_hashed(store: Store) -> None:
    admin, token = store.accounts.ensure_admin("secret-token")
    assert token == "secret-token"
    assert admin.is_admin
    with store.read() as s:
        hashes = list(s.scalars(sa.select(TokenRow.token_hash)))
    assert hashes == [hash_token("secret-token")]
    assert "secret-token" not in hashes
    found = store.accounts.authenticate(hash_token("secret-token"))
    assert found is not None and found.user.id == admin.id
    assert store.accounts.authenticate(hash_token("wrong")) is None
    # a second start keeps the admin and prints no token
    again, token2 = store.accounts.ensure_admin("other")
    assert again.id == admin.id and token2 is None


def test_generated_admin_token(store: Store) -> None:
    _, token = store.accounts.ensure_admin(None)
    assert token and token.startswith("r8_")
    assert store.accounts.authenticate(hash_token(token)) is not None


def test_webhook_secret_is_stable(store: Store) -> None:
    admin, _ = store.accounts.ensure_admin(None)
    secret = store.accounts.webhook_secret(admin.id)
    assert secret.startswith("whsec_") and secret.count("_") == 1
    assert store.accounts.webhook_secret(admin.id) == secret


def test_models_and_versions(store: Store) -> None:
    user = store.accounts.create_user("alice")
    model = store.catalog.create_model(user.id, "hello", visibility="private", description="hi")
    assert model.owner.username == "alice"
    with pytest.raises(Conflict):
        store.catalog.create_model(user.id, "hello")
    version = store.catalog.create_version(model.id, VERSION, openapi_schema={"openapi": "3.0.2"})
    assert version.model.owner.username == "alice"
    assert store.catalog.latest_version(model.id).id == VERSION  # type: ignore[union-attr]
    with pytest.raises(Conflict, match="versions"):
        store.catalog.delete_model(model.id)
    store.catalog.delete_version(VERSION)
    store.catalog.update_model(model.id, readme="# Hello")
    assert store.catalog.model("alice", "hello").readme == "# Hello"  # type: ignore[union-attr]
    store.catalog.delete_model(model.id)
    assert store.catalog.model("alice", "hello") is None


def test_public_models_cannot_be_deleted(store: Store) -> None:
    user = store.accounts.create_user("bob")
    model = store.catalog.create_model(user.id, "pub", visibility="public")
    with pytest.raises(Conflict, match="private"):
        store.catalog.delete_model(model.id)


def test_model_listing_hides_private_models_of_others(store: Store) -> None:
    a = store.accounts.create_user("a")
    b = store.accounts.create_user("b")
    store.catalog.create_model(a.id, "mine", visibility="private", description="a secret")
    store.catalog.create_model(b.id, "theirs", visibility="public", description="a cat model")
    assert [m.name for m in store.catalog.list_models(b.id)] == ["theirs"]
    assert {m.name for m in store.catalog.list_models(a.id)} == {"mine", "theirs"}
    assert [m.name for m in store.catalog.list_models(a.id, query="CAT")] == ["theirs"]
    page = store.catalog.list_models(None, limit=1)
    assert len(page) == 1 and page.next_cursor
    rest = store.catalog.list_models(None, limit=1, cursor=page.next_cursor)
    assert {page[0].name, rest[0].name} == {"mine", "theirs"}


def _prediction(owner_id: int, **kw: object) -> PredictionRow:
    fields: dict[str, object] = dict(
        id=new_id(),
        owner_id=owner_id,
        model="o/n",
        version_id=VERSION,
        input={"x": 1},
        run_input={"x": 1},
        created_at=utcnow(),
    )
    fields.update(kw)
    return PredictionRow(**fields)


def test_prediction_lifecycle(store: Store) -> None:
    user = store.accounts.create_user("carol")
    row = _prediction(user.id)
    with store.write() as s:
        s.add(row)
    assert store.predictions.mark_started(row.id)
    assert not store.predictions.mark_started(row.id)
    store.predictions.append_logs(row.id, "one\n")
    store.predictions.append_logs(row.id, "two\n")
    with store.write() as s:  # iterator output as the scheduler's writes leave it
        s.get_one(PredictionRow, row.id).output = ["a", "b"]
    got = store.predictions.get(row.id)
    assert got is not None
    assert got.status == PROCESSING and got.logs == "one\ntwo\n" and got.output == ["a", "b"]
    done = store.predictions.finish(
        row.id, SUCCEEDED, metrics={"predict_time": 0.5}, keep_output=True
    )
    assert done is not None
    assert done.output == ["a", "b"] and done.metrics["predict_time"] == 0.5
    assert done.metrics["total_time"] >= 0 and done.run_input is None
    # terminal is final
    assert store.predictions.finish(row.id, CANCELED) is None
    assert store.predictions.get(row.id).status == SUCCEEDED  # type: ignore[union-attr]


def test_prediction_pagination_and_filters(store: Store) -> None:
    user = store.accounts.create_user("dave")
    base = utcnow() - timedelta(hours=1)
    ids = []
    with store.write() as s:
        for i in range(5):
            row = _prediction(user.id, created_at=base + timedelta(seconds=i))
            ids.append(row.id)
            s.add(row)
    page1 = store.predictions.page(user.id, limit=2)
    assert [p.id for p in page1] == ids[::-1][:2]
    assert page1.previous_cursor is None
    page2 = store.predictions.page(user.id, limit=2, cursor=page1.next_cursor)
    assert [p.id for p in page2] == ids[::-1][2:4]
    back = store.predictions.page(user.id, limit=2, cursor=page2.previous_cursor)
    assert [p.id for p in back] == ids[::-1][:2]
    page3 = store.predictions.page(user.id, limit=2, cursor=page2.next_cursor)
    assert [p.id for p in page3] == ids[:1] and page3.next_cursor is None
    after = store.predictions.page(user.id, created_after=base + timedelta(seconds=2.5))
    assert [p.id for p in after] == ids[::-1][:2]
    before = store.predictions.page(user.id, created_before=base + timedelta(seconds=0.5))
    assert [p.id for p in before] == ids[:1]
    other = store.accounts.create_user("eve")
    assert list(store.predictions.page(other.id)) == []


def test_retention_clears_data(store: Store) -> None:
    user = store.accounts.create_user("frank")
    row = _prediction(user.id, input_dir="/tmp/nowhere")
    with store.write() as s:
        s.add(row)
    store.predictions.append_logs(row.id, "hello")
    store.predictions.finish(row.id, SUCCEEDED, output="out")
    removed = store.predictions.remove_data(utcnow() + timedelta(seconds=1))
    assert [r.id for r in removed] == [row.id]
    got = store.predictions.get(row.id)
    assert got is not None
    assert (got.input, got.output, got.logs, got.data_removed) == ({}, None, "", True)
    assert store.predictions.remove_data(utcnow() + timedelta(seconds=1)) == []


def test_retention_keeps_up_with_more_than_a_batch_and_spares_the_recent(
    store: Store,
) -> None:
    user = store.accounts.create_user("gina")
    rows = [_prediction(user.id) for _ in range(7)]
    recent = _prediction(user.id)
    running = _prediction(user.id)
    with store.write() as s:
        for row in (*rows, recent, running):
            s.add(row)
    for row in rows:
        store.predictions.finish(row.id, SUCCEEDED, output="out")
    cutoff = utcnow() + timedelta(seconds=1)
    store.predictions.finish(recent.id, SUCCEEDED, output="kept", at=cutoff + timedelta(seconds=60))
    removed = store.predictions.remove_data(cutoff, batch=3)
    assert sorted(r.id for r in removed) == sorted(r.id for r in rows)
    kept = store.predictions.get(recent.id)
    assert kept is not None and kept.output == "kept" and not kept.data_removed
    still = store.predictions.get(running.id)
    assert still is not None and still.input == {"x": 1}  # unfinished: never swept


def test_finished_predictions_with_a_webhook_are_owed_until_marked(store: Store) -> None:
    user = store.accounts.create_user("dora")
    hooked = _prediction(user.id, webhook="http://127.0.0.1:9/hook")
    running = _prediction(user.id, webhook="http://127.0.0.1:9/hook")
    plain = _prediction(user.id)
    with store.write() as s:
        for row in (hooked, running, plain):
            s.add(row)
    assert store.predictions.owed_webhooks() == []  # nothing finished yet
    for row in (hooked, plain):
        store.predictions.finish(row.id, SUCCEEDED, output="x")
    assert store.predictions.owed_webhooks() == [hooked.id]
    store.predictions.mark_webhook_done(hooked.id)
    assert store.predictions.owed_webhooks() == []
    stored = store.predictions.get(hooked.id)
    assert stored is not None and stored.webhook_done
