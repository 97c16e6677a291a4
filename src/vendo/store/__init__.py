"""Records of the platform: SQLAlchemy 2 + Alembic on SQLite (WAL) or PostgreSQL.

    store = Store.open(database_url(settings.data_dir, settings.database_url))
    model = store.catalog.create_model(admin.id, "hello")

:class:`Store` is the entry point (see :mod:`vendo.store.store` for why it is shaped so);
its parts, one module each: :mod:`~vendo.store.accounts` (users, tokens),
:mod:`~vendo.store.catalog` (models, versions, builds), :mod:`~vendo.store.predictions`,
:mod:`~vendo.store.files` (files, server-wide values), over the shared engine of
:mod:`~vendo.store.database`. :mod:`vendo.store.tables` holds the rows they return.
"""

from vendo.store.accounts import ROLES, Accounts, Identity, check_username
from vendo.store.cache import MISS, CachedRead, Miss
from vendo.store.catalog import Catalog
from vendo.store.database import Database, WriterBusy
from vendo.store.engine import database_url
from vendo.store.files import Files, Meta
from vendo.store.ids import hash_token, new_id, new_token, new_webhook_secret, utcnow
from vendo.store.paging import Page
from vendo.store.predictions import Predictions
from vendo.store.status import (
    CANCELED,
    FAILED,
    PROCESSING,
    STARTING,
    STATUSES,
    SUCCEEDED,
    TERMINAL,
    JobState,
    PredictionStatus,
)
from vendo.store.store import CachedReads, Store
from vendo.store.tables import (
    BuildRow,
    FileRow,
    JobRow,
    MembershipRow,
    ModelRow,
    PredictionRow,
    TokenRow,
    UserRow,
    VersionRow,
)

__all__ = [
    "CANCELED",
    "FAILED",
    "PROCESSING",
    "STARTING",
    "STATUSES",
    "SUCCEEDED",
    "TERMINAL",
    "MISS",
    "JobState",
    "PredictionStatus",
    "ROLES",
    "Accounts",
    "Identity",
    "check_username",
    "BuildRow",
    "CachedRead",
    "CachedReads",
    "Catalog",
    "Database",
    "FileRow",
    "Files",
    "JobRow",
    "MembershipRow",
    "Meta",
    "Miss",
    "ModelRow",
    "Page",
    "PredictionRow",
    "Predictions",
    "Store",
    "TokenRow",
    "UserRow",
    "VersionRow",
    "WriterBusy",
    "database_url",
    "hash_token",
    "new_id",
    "new_token",
    "new_webhook_secret",
    "utcnow",
]
