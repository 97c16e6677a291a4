"""The store's read cache (tokens, models, versions for the prediction path) and the
SQLite write transactions that never wait. Real SQLite/PostgreSQL stores."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from support import ManualClock
from vendo.store import MISS, Store, WriterBusy, hash_token
from vendo.store import cache as cache_module
from vendo.store.cache import CachedRead, ReadCache

VERSION = "c" * 64


@pytest.fixture
def store(db_url: str):
    s = Store.open(db_url, cache_ttl=60)
    yield s
    s.close()


def test_values_expire_after_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    monkeypatch.setattr(cache_module, "time", clock.module)
    cache = ReadCache(ttl=5)
    cache.put("k", None)  # None is a value (an unknown token), not a miss
    clock.advance(4.9)
    assert cache.get("k") is None
    clock.advance(0.2)
    assert cache.get("k") is MISS


def test_a_value_read_before_a_clear_is_not_kept() -> None:
    cache = ReadCache(ttl=60)
    seen = cache.generation
    cache.clear()  # a change committed while the old value was being read
    cache.put("k", "old", seen)
    assert cache.get("k") is MISS
    cache.put("k", "new", cache.generation)
    assert cache.get("k") == "new"


def test_the_cache_keeps_at_most_size_entries() -> None:
    cache = ReadCache(ttl=60, size=3)
    for key in "abcd":
        cache.put(key, key)
    assert cache.get("a") is MISS
    assert [cache.get(k) for k in "bcd"] == ["b", "c", "d"]


def test_a_cached_read_that_straddles_a_write_is_not_kept() -> None:
    cache = ReadCache(ttl=60)

    def read(key: str) -> str:
        cache.clear()  # a write to the catalog commits while this read runs
        return f"old {key}"

    by_key = CachedRead(cache, "by_key", read)
    assert by_key("k") == "old k"  # the caller gets what it read...
    assert by_key.peek("k") is MISS  # ...but the next caller reads again
    other = CachedRead(cache, "other", str.upper)
    assert other("k") == "K" and other.peek("k") == "K"
    assert by_key.peek("k") is MISS  # each read has its own keys in the shared cache


def test_ttl_zero_caches_nothing() -> None:
    cache = ReadCache(ttl=0)
    cache.put("k", 1)
    assert cache.get("k") is MISS


def test_reads_are_kept_and_changes_through_the_store_clear_them(store: Store) -> None:
    admin, _ = store.accounts.ensure_admin("tok")
    key = hash_token("tok")
    assert store.cached.caller.peek(key) is MISS
    found = store.cached.caller(key)
    assert found is not None and found.user.id == admin.id
    assert store.cached.caller.peek(key) is found

    model = store.catalog.create_model(admin.id, "m", visibility="public")
    store.catalog.create_version(model.id, VERSION, openapi_schema={})
    assert store.cached.model("admin", "m").visibility == "public"
    assert store.cached.version(VERSION) is not None
    assert store.cached.latest_version(model.id).id == VERSION

    store.catalog.update_model(model.id, visibility="private")
    assert store.cached.model.peek("admin", "m") is MISS
    assert store.cached.model("admin", "m").visibility == "private"

    store.catalog.delete_version(VERSION)
    assert store.cached.version.peek(VERSION) is MISS
    assert store.cached.version(VERSION) is None
    assert store.cached.latest_version(model.id) is None

    # an unknown token is remembered as unknown until a token is created
    assert store.cached.caller(hash_token("new")) is None
    store.accounts.create_token(admin.id, "new")
    assert store.cached.caller(hash_token("new")) is not None


def test_every_change_of_a_deployment_clears_its_cached_read(store: Store) -> None:
    admin, _ = store.accounts.ensure_admin("tok")
    model = store.catalog.create_model(admin.id, "m", visibility="public")
    store.catalog.create_version(model.id, VERSION, openapi_schema={})
    store.catalog.create_version(model.id, "d" * 64, openapi_schema={})
    assert store.cached.deployment("admin", "prod") is None  # unknown, remembered so...
    release = dict(model_id=model.id, version_id=VERSION, hardware="cpu")
    made = store.deployments.create(
        admin.id, "prod", created_by_id=admin.id, min_instances=0, max_instances=1, **release
    )
    assert store.cached.deployment.peek("admin", "prod") is MISS  # ...until it is made
    assert store.cached.deployment("admin", "prod").release.number == 1
    store.deployments.release(made.deployment.id, admin.id, version_id="d" * 64)
    assert store.cached.deployment.peek("admin", "prod") is MISS
    assert store.cached.deployment("admin", "prod").release.version_id == "d" * 64
    store.deployments.release(made.deployment.id, admin.id, max_instances=0)  # disabled
    assert store.cached.deployment("admin", "prod").release.max_instances == 0
    store.deployments.delete(made.deployment.id, made.pool)
    assert store.cached.deployment.peek("admin", "prod") is MISS
    assert store.cached.deployment("admin", "prod") is None


def test_only_the_listed_reads_go_through_the_cache(store: Store) -> None:
    # a listing is never cached: it is not among the store's cached reads
    assert {f.name for f in dataclasses.fields(store.cached)} == {
        "caller",
        "model",
        "version",
        "latest_version",
        "deployment",
    }
    store.accounts.ensure_admin("tok")
    store.catalog.list_models(None)
    store.catalog.model("admin", "m")  # the plain read: fresh, and not kept
    assert store.cached.model.peek("admin", "m") is MISS
    store.cached.caller(hash_token("tok"))
    assert store.cached.caller.peek(hash_token("tok")) is not MISS


def test_a_store_without_ttl_keeps_nothing(db_url: str) -> None:
    s = Store.open(db_url)
    try:
        s.accounts.ensure_admin("tok")
        s.cached.caller(hash_token("tok"))
        assert s.cached.caller.peek(hash_token("tok")) is MISS
    finally:
        s.close()


# --- writes that never wait (SQLite) ---------------------------------------------------


def test_transaction_nowait_fails_at_once_while_another_writer_holds_the_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "vendo.db"
    s = Store.open(f"sqlite:///{path}")
    try:
        assert s.writes_nowait
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(WriterBusy), s.transaction_nowait():
            pass
        assert time.monotonic() - started < 1  # no busy wait (the other path waits 30 s)
        other.execute("COMMIT")
        other.close()
        with s.transaction_nowait() as conn:  # reconnected after the failure
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        with s.engines.reader.connect() as conn:
            assert conn.exec_driver_sql("SELECT x FROM t").scalar() == 1
        # the loop's connection leaves checkpoints to Store.checkpoint()
        with s.transaction_nowait() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        s.checkpoint()
    finally:
        s.close()


def test_a_transaction_nowait_error_rolls_back(tmp_path: Path) -> None:
    s = Store.open(f"sqlite:///{tmp_path / 'vendo.db'}")
    try:
        with s.transaction() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with pytest.raises(RuntimeError), s.transaction_nowait() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            raise RuntimeError("a write failed")
        with s.transaction_nowait() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    finally:
        s.close()


def test_postgres_has_no_nowait_writes(db_url: str) -> None:
    s = Store.open(db_url)
    try:
        assert s.writes_nowait == db_url.startswith("sqlite")
        s.checkpoint()  # a no-op there
    finally:
        s.close()


def test_threads_can_read_through_while_the_cache_is_cleared(store: Store) -> None:
    admin, _ = store.accounts.ensure_admin("tok")
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(200):
                store.cached.caller(hash_token("tok"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(20):
        store.accounts.create_token(admin.id, f"t{i}")
    for t in threads:
        t.join()
    assert errors == []
    assert store.cached.caller(hash_token("t19")) is not None
