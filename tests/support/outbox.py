"""What a server's webhook outbox still holds, read from its SQLite database.

A ``completed`` delivery is a row of ``webhook_deliveries`` from the moment it is
published until it is delivered (or given up): an empty table after the receiver saw a
terminal message is the event that says no retry or late duplicate can follow."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["pending_deliveries"]


def pending_deliveries(data_dir: Path) -> list[tuple[str, int]]:
    """``(webhook-id, attempts)`` of each delivery not yet done."""
    with sqlite3.connect(data_dir / "vendo.db") as db:
        return list(db.execute("SELECT id, attempts FROM webhook_deliveries"))
