"""The shared engine under every part of the store: sessions, transactions, the read
cache, and SQLite's write lock and WAL upkeep.

Call its methods off the event loop (``anyio.to_thread.run_sync`` or Starlette's
``run_in_threadpool``), except :meth:`Database.transaction_nowait`, which is made for
the loop. Rows come back detached: read their attributes freely, change records only
through the store.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from vendo.store.cache import ReadCache
from vendo.store.engine import Engines

__all__ = ["Database", "WriterBusy"]


class WriterBusy(Exception):
    """:meth:`Database.transaction_nowait` found SQLite's write lock taken."""


class Database:
    """Sessions and transactions over one store's :class:`Engines`, and the
    :class:`ReadCache` of the reads the prediction path makes (see :meth:`changed`)."""

    def __init__(
        self, engines: Engines, *, cache_ttl: float = 0.0, stamp: Path | None = None
    ) -> None:
        self.engines = engines
        self._read = sessionmaker(engines.reader, expire_on_commit=False)
        self._write = sessionmaker(engines.writer, expire_on_commit=False)
        self._loop_conn: sa.Connection | None = None  # see transaction_nowait()
        self.cache = ReadCache(cache_ttl)
        # See changed() and sync_cache(): the file each process replaces on a change.
        self._stamp = stamp
        self._stamp_seen = self._stamp_state()

    def close(self) -> None:
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None
        self.engines.dispose()

    @property
    def dialect(self) -> str:
        return self.engines.writer.dialect.name

    def changed(self) -> None:
        """Users, tokens, models, versions or deployments changed: forget cached reads.
        Every write to those records calls it after its commit.

        With a stamp file (the data dir's, see :meth:`Store.from_settings`) it is
        replaced too, so that every process sharing the data dir forgets its cached
        reads on its next :meth:`sync_cache`: a token revoked by ``vendo tokens
        revoke`` stops working on the running server's next request, not up to
        ``cache_ttl`` later. Replaced, not touched: a new inode shows a change however
        coarse the file system's clock."""
        self.cache.clear()
        stamp = self._stamp
        if stamp is not None:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            scratch = stamp.with_name(f".{stamp.name}.{os.getpid()}.{threading.get_ident()}")
            scratch.write_bytes(b"")
            os.replace(scratch, stamp)

    def sync_cache(self) -> None:
        """Forget cached reads if another process changed users, tokens, models,
        versions or deployments since the last call (its stamp file changed). One
        ``stat`` and no database read: cheap enough for every request. No-op without a
        stamp."""
        if self._stamp is None or self.cache.ttl <= 0:
            return
        state = self._stamp_state()
        if state != self._stamp_seen:
            self._stamp_seen = state
            self.cache.clear()

    def _stamp_state(self) -> tuple[int, int] | None:
        if self._stamp is None:
            return None
        try:
            found = os.stat(self._stamp)
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_mtime_ns

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session (never commits)."""
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed when the block ends without an error.

        On SQLite it holds the one writer connection: keep the block short and never
        await inside it.
        """
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A write transaction on a Core connection, committed when the block ends
        without an error: for writes made of statements (no ORM unit of work)."""
        with self.engines.writer.begin() as conn:
            yield conn

    @property
    def writes_nowait(self) -> bool:
        """Whether :meth:`transaction_nowait` is available (SQLite)."""
        return self.engines.loop_writer is not None

    @contextmanager
    def transaction_nowait(self) -> Iterator[sa.Connection]:
        """:meth:`transaction` that never waits for a lock: :class:`WriterBusy` at once
        when another connection holds SQLite's write lock. SQLite only (see
        :attr:`writes_nowait`), for the short group commits that run on the event loop,
        one at a time. Its connection stays open between transactions and never
        checkpoints the WAL: call :meth:`checkpoint` now and then.

        The transaction is the driver's own: SQLAlchemy's begin and commit (events,
        transaction objects) cost about a fifth of a lone prediction's insert, which goes
        straight to the driver anyway (:mod:`vendo.store.prepared`). A Core statement in
        the block still works: SQLAlchemy's autobegin finds the driver's transaction open
        (see the ``begin`` listener in :mod:`vendo.store.engine`) and its commit or
        rollback ends it."""
        if self.engines.loop_writer is None:
            raise RuntimeError("transaction_nowait() needs SQLite")
        if self._loop_conn is None:
            self._loop_conn = self.engines.loop_writer.connect()
        conn = self._loop_conn
        driver = conn.connection.driver_connection
        assert driver is not None
        try:
            driver.execute("BEGIN IMMEDIATE")  # take the lock now, or fail
        except sqlite3.OperationalError as exc:
            self._loop_conn = None
            conn.invalidate()
            reason = str(exc)
            if "locked" in reason or "busy" in reason:
                raise WriterBusy(reason) from exc
            raise
        try:
            yield conn
        except BaseException:
            if conn.in_transaction():
                conn.rollback()
            else:
                driver.rollback()
            raise
        if conn.in_transaction():
            conn.commit()
        else:
            driver.commit()

    def checkpoint(self, *, truncate: bool = False) -> None:
        """Copy what the WAL holds back into the SQLite file. ``PASSIVE`` waits for no
        one but cannot restart a WAL that a writer keeps appending to; ``truncate``
        (``TRUNCATE``) holds writers back for the moment it takes to finish the copy and
        empties the WAL. Without the latter now and then the WAL would grow without
        end. Blocking; no-op on PostgreSQL."""
        if self.engines.loop_writer is None:
            return
        mode = "TRUNCATE" if truncate else "PASSIVE"
        # The DBAPI connection: outside any transaction (the engine's would open one).
        raw = self.engines.reader.raw_connection()
        try:
            raw.cursor().execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        finally:
            raw.close()
