"""The store's group commit (what the scheduler writes through) on SQLite: batches run
on the event loop, and go to the writer's thread when another connection holds the write
lock, without stalling the loop. A real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from vendo.store import Store
from vendo.store.batch import BatchWriter


def insert(value: int):
    def write(conn: sa.Connection) -> int:
        conn.exec_driver_sql(f"INSERT INTO t VALUES ({value})")
        return value

    return write


async def test_batches_commit_on_the_loop_and_wait_on_the_thread_when_locked(
    tmp_path: Path,
) -> None:
    path = tmp_path / "vendo.db"
    store = Store.open(f"sqlite:///{path}")
    writer = BatchWriter(store)
    try:
        with store.transaction() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        # several submits in one loop turn: one transaction
        assert await asyncio.gather(*(writer.add(insert(i)) for i in range(5))) == [
            0,
            1,
            2,
            3,
            4,
        ]
        assert (writer.batches, writer.writes) == (1, 5)

        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # e.g. another process writing
        pending = writer.add(insert(99))
        ticks = 0
        for _ in range(10):  # the loop goes on while the batch waits for the lock
            await asyncio.sleep(0.02)  # not a wait: proves the loop turns meanwhile
            ticks += 1
        assert ticks == 10 and not pending.done()
        other.execute("COMMIT")
        other.close()
        assert await asyncio.wait_for(pending, 30) == 99
        with store.engines.reader.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 6
    finally:
        await writer.close()
        store.close()


async def test_a_failing_write_fails_alone(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'vendo.db'}")
    writer = BatchWriter(store)
    try:
        with store.transaction() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER UNIQUE)")

        def duplicate(conn: sa.Connection) -> None:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")

        results = await asyncio.gather(
            writer.add(insert(1)), writer.add(duplicate), writer.add(insert(2)),
            return_exceptions=True,
        )  # fmt: skip
        assert results[0] == 1 and results[2] == 2
        assert isinstance(results[1], sa.exc.IntegrityError)
        with store.engines.reader.connect() as conn:
            assert sorted(conn.exec_driver_sql("SELECT x FROM t").scalars()) == [1, 2]
    finally:
        await writer.close()
        store.close()


async def test_writes_made_on_the_loop_reach_the_database_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loop's connection never checkpoints the WAL itself: the writer does, on its
    # thread, every CHECKPOINT_EVERY batches (truncating every TRUNCATE_EVERY), even
    # when every write was eager.
    from vendo.store import batch as writes

    monkeypatch.setattr(writes, "CHECKPOINT_EVERY", 3)
    monkeypatch.setattr(writes, "TRUNCATE_EVERY", 3)
    path = tmp_path / "vendo.db"
    store = Store.open(f"sqlite:///{path}")
    writer = BatchWriter(store)
    try:
        with store.transaction() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        for i in range(3):
            future = writer.add(insert(i), eager=True)
            assert future.done()  # committed on the spot: nothing else was pending
        await writer.close()  # waits for the checkpoint on the writer's thread
        # and the WAL was emptied: a writer that never stops must not grow it for ever
        assert (tmp_path / "vendo.db-wal").stat().st_size == 0
        # the file alone (no WAL) has the rows once a checkpoint copied them back
        direct = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
        try:
            assert direct.execute("SELECT count(*) FROM t").fetchone() == (3,)
        finally:
            direct.close()
    finally:
        store.close()
