"""Engines for the embedded SQLite file or a PostgreSQL server, and migrations.

SQLite follows a one-writer discipline: every write goes through a dedicated engine
whose pool holds a single connection and opens its transactions with
``BEGIN IMMEDIATE``, so writers queue in-process instead of failing with "database is
locked"; reads use their own pool and, thanks to WAL, never wait for the writer.
``busy_timeout`` covers the rare writer in another process (a second ``vendo`` command
on the same data dir). PostgreSQL uses one pooled engine for both.

SQLite has one more engine, ``loop_writer``, for the scheduler's group commits, which
run on the event loop itself (see :mod:`vendo.store.batch` for why). Its one
connection never waits: ``busy_timeout`` 0, so a lock held elsewhere fails at once
(the batch then goes to a thread), and no automatic WAL checkpoint, whose fsync would
stall the loop (:meth:`vendo.store.Store.checkpoint` runs them off the loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from vendo.jsontext import json_text

__all__ = ["Engines", "create_engines", "database_url", "upgrade"]

_MIGRATIONS = Path(__file__).parent / "migrations"
_BUSY_TIMEOUT_MS = 30_000
_MMAP_BYTES = 1 << 30  # address space, not memory: pages are the OS's file cache
_CACHE_KIB = 16_384  # per connection, filled only as pages are used


@dataclass(frozen=True)
class Engines:
    """The engines of one store: ``writer`` for writes, ``reader`` for reads (the same
    engine on PostgreSQL)."""

    reader: sa.Engine
    writer: sa.Engine
    loop_writer: sa.Engine | None = None  # SQLite: writes that must never wait

    @property
    def is_sqlite(self) -> bool:
        return self.writer.dialect.name == "sqlite"

    def dispose(self) -> None:
        self.reader.dispose()
        if self.writer is not self.reader:
            self.writer.dispose()
        if self.loop_writer is not None:
            self.loop_writer.dispose()


def database_url(data_dir: Path, configured: str | None) -> str:
    """The SQLAlchemy URL: PostgreSQL (psycopg 3) if configured, else SQLite in the data
    dir. ``postgresql://`` and ``postgres://`` URLs are mapped to the psycopg driver."""
    if configured:
        for prefix in ("postgresql://", "postgres://"):
            if configured.startswith(prefix):
                return "postgresql+psycopg://" + configured[len(prefix) :]
        return configured
    return f"sqlite:///{Path(data_dir).resolve() / 'vendo.db'}"


def _sqlite_engine(url: str, *, writer: bool, nowait: bool = False) -> sa.Engine:
    timeout = 0 if nowait else 30
    kwargs: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": timeout},
        "json_serializer": json_text,
    }
    if writer:
        kwargs.update(pool_size=1, max_overflow=0, pool_timeout=120)
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={0 if nowait else _BUSY_TIMEOUT_MS}")
        if nowait:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Prediction ids are random, so each insert lands on a random page of the primary
        # key index; once that index outgrows SQLite's default 2 MiB page cache, every
        # insert would read a page with a system call. Mapped pages come from the OS's
        # cache (shared by all connections) without one.
        cursor.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
        cursor.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # on the driver's connection: SQLAlchemy's execution path would double its cost
        driver = connection.connection.driver_connection
        assert driver is not None
        if not driver.in_transaction:  # else begun on the driver: transaction_nowait()
            driver.execute(begin)

    return engine


def create_engines(url: str) -> Engines:
    """Engines for ``url`` (see :func:`database_url`)."""
    if url.startswith("sqlite"):
        path = sa.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return Engines(
            reader=_sqlite_engine(url, writer=False),
            writer=_sqlite_engine(url, writer=True),
            loop_writer=_sqlite_engine(url, writer=True, nowait=True),
        )
    engine = sa.create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, json_serializer=json_text
    )
    return Engines(reader=engine, writer=engine)


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` (start-up runs ``head``)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
