"""The store: one object over one database, its records reached by kind.

    store = Store.open(url)
    admin, _ = store.accounts.ensure_admin(None)
    model = store.catalog.create_model(admin.id, "hello")
    version = await cached(store.cached.version, version_id)   # see CachedReads

Why a thin entry point over parts rather than one class of every operation, or parts
passed around separately: the platform hands one ``Store`` to the API, the queue and the
scheduler; the parts share its engine, transactions (the queue enqueues a job in the
transaction that inserts its prediction) and read cache; and a call site names the kind
of record it touches (``store.catalog.version(id)``), which is what a reader looks for.
The shared engine (:class:`~vendo.store.database.Database`: sessions, transactions,
SQLite's write lock) is the ``Store`` itself, so the few callers that write statements
of their own (the queue, the scheduler's group commits) keep using ``store.write()`` and
``store.transaction()``.

Every method is blocking: call it off the event loop, except ``peek`` of a cached read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vendo.store.accounts import Accounts, Identity
from vendo.store.agents import Agents
from vendo.store.cache import CachedRead
from vendo.store.catalog import Catalog
from vendo.store.database import Database, WriterBusy
from vendo.store.deployments import Deployed, Deployments
from vendo.store.engine import Engines, create_engines, database_url, upgrade
from vendo.store.files import Files, Meta
from vendo.store.predictions import Predictions
from vendo.store.tables import ModelRow, VersionRow
from vendo.store.usage import Usage

# WriterBusy: what Store.transaction_nowait() raises, so it is named next to the Store
__all__ = ["STAMP_FILE", "CachedReads", "Store", "WriterBusy"]

STAMP_FILE = "cache.stamp"


@dataclass(frozen=True)
class CachedReads:
    """The reads every prediction request makes, through the store's read cache (see
    :mod:`vendo.store.cache` for how fresh they are). Only these are cached: each is
    cleared by the writes of :class:`Accounts`, :class:`Catalog` and
    :class:`Deployments` that could change it."""

    #: :meth:`Accounts.authenticate`: the caller by the hash of their token
    caller: CachedRead[str, Identity | None]
    #: :meth:`Catalog.model`: a model by owner and name
    model: CachedRead[str, str, ModelRow | None]
    #: :meth:`Catalog.version`
    version: CachedRead[str, VersionRow | None]
    #: :meth:`Catalog.latest_version`
    latest_version: CachedRead[int, VersionRow | None]
    #: :meth:`Deployments.get`: a deployment and its current release by owner and name
    deployment: CachedRead[str, str, Deployed | None]


class Store(Database):
    """Records of users, tokens, models, versions, builds, predictions and files.

    ``Store.open(url)`` connects and runs the migrations; ``close()`` releases the
    connections. The job queue's own operations live in :mod:`vendo.queue`.
    """

    def __init__(
        self, engines: Engines, *, cache_ttl: float = 0.0, stamp: Path | None = None
    ) -> None:
        super().__init__(engines, cache_ttl=cache_ttl, stamp=stamp)
        self.accounts = Accounts(self)
        self.catalog = Catalog(self)
        self.predictions = Predictions(self)
        self.deployments = Deployments(self, self.predictions)
        self.files = Files(self)
        self.meta = Meta(self)
        self.usage = Usage(self)
        self.agents = Agents(self)
        cache = self.cache
        self.cached = CachedReads(
            caller=CachedRead(cache, "caller", self.accounts.authenticate),
            model=CachedRead(cache, "model", self.catalog.model),
            version=CachedRead(cache, "version", self.catalog.version),
            latest_version=CachedRead(cache, "latest_version", self.catalog.latest_version),
            deployment=CachedRead(cache, "deployment", self.deployments.get),
        )

    @classmethod
    def open(
        cls,
        url: str,
        *,
        migrate: bool = True,
        cache_ttl: float = 0.0,
        stamp: Path | None = None,
    ) -> Store:
        """Connect to ``url`` (SQLAlchemy form) and upgrade the schema to head."""
        engines = create_engines(url)
        if migrate:
            upgrade(engines.writer)
        return cls(engines, cache_ttl=cache_ttl, stamp=stamp)

    @classmethod
    def from_settings(
        cls, data_dir: Path, database: str | None, *, cache_ttl: float = 0.0
    ) -> Store:
        """The store of a data dir (its SQLite file, or ``database``), sharing the
        cache stamp ``<data_dir>/cache.stamp`` with every process on that data dir
        (see :meth:`Database.changed`)."""
        return cls.open(
            database_url(data_dir, database),
            cache_ttl=cache_ttl,
            stamp=Path(data_dir) / STAMP_FILE,
        )
