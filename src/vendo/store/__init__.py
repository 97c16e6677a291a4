"""Records of the platform: SQLAlchemy 2 + Alembic on SQLite (WAL) or PostgreSQL.

    store = Store.open(database_url(settings.data_dir, settings.database_url))
    model = store.create_model(admin.id, "hello")

See :class:`vendo.store.store.Store` for every operation and
:mod:`vendo.store.tables` for the rows it returns.
"""

from vendo.store.cache import MISS
from vendo.store.engine import database_url
from vendo.store.ids import hash_token, new_id, new_token, new_webhook_secret, utcnow
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
from vendo.store.store import Page, Store, WriterBusy
from vendo.store.tables import (
    BuildRow,
    FileRow,
    JobRow,
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
    "BuildRow",
    "FileRow",
    "JobRow",
    "ModelRow",
    "Page",
    "PredictionRow",
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
