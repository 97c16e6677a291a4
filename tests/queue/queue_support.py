"""What the queue's tests share besides fixtures."""

from __future__ import annotations

from vendo.queue import Queue
from vendo.store import PredictionRow, Store, new_id, utcnow

__all__ = ["submit"]


def submit(store: Store, version_id: str) -> str:
    """Queue a prediction of ``version_id`` for a new user; its id."""
    user = store.accounts.create_user(f"u{new_id()[:8]}")
    row = PredictionRow(
        id=new_id(), owner_id=user.id, model="o/n", version_id=version_id, input={},
        created_at=utcnow(),
    )  # fmt: skip
    Queue(store).submit(row)
    return row.id
