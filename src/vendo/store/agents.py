"""Agents (scaled mode): who runs models for the shared queue, and whether it lives.

An agent registers under its name (the ``claimed_by`` of the jobs it claims), then
heartbeats. Another process that finds its heartbeat older than the timeout takes the
row away (:meth:`Agents.forget`, in the transaction that recovers the agent's jobs:
:meth:`vendo.queue.jobs.Queue.recover_lost`), so only one process recovers each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vendo.store.database import Database
from vendo.store.ids import utcnow
from vendo.store.tables import AgentRow

__all__ = ["Agents"]


class Agents:
    """The ``agents`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def register(self, name: str, hardware: list[str], capacity: dict[str, Any]) -> AgentRow:
        """Record (or replace: a restart under the same name) a live agent."""
        now = utcnow()
        row = AgentRow(
            name=name, hardware=hardware, capacity=capacity, started_at=now, heartbeat_at=now
        )
        with self._db.write() as s:
            s.merge(row)
        return row

    def heartbeat(self, name: str) -> bool:
        """The agent lives; False when its row is gone: another process found it lost
        and recovered its jobs."""
        with self._db.write() as s:
            result = s.execute(
                sa.update(AgentRow).where(AgentRow.name == name).values(heartbeat_at=utcnow())
            )
            return bool(getattr(result, "rowcount", 0))

    def remove(self, name: str) -> None:
        """The agent stopped cleanly."""
        with self._db.write() as s:
            s.execute(sa.delete(AgentRow).where(AgentRow.name == name))

    def get(self, name: str) -> AgentRow | None:
        with self._db.read() as s:
            return s.get(AgentRow, name)

    def every(self) -> list[AgentRow]:
        with self._db.read() as s:
            return list(s.scalars(sa.select(AgentRow).order_by(AgentRow.name)))

    def lost(self, before: datetime) -> list[str]:
        """Agents whose last heartbeat is older than ``before``."""
        with self._db.read() as s:
            return list(s.scalars(sa.select(AgentRow.name).where(AgentRow.heartbeat_at < before)))

    @staticmethod
    def forget(session: Session, name: str, before: datetime) -> bool:
        """Inside the caller's transaction: remove ``name`` if its heartbeat is still
        older than ``before``. True for the one process that removed it."""
        result = session.execute(
            sa.delete(AgentRow).where(AgentRow.name == name, AgentRow.heartbeat_at < before)
        )
        return bool(getattr(result, "rowcount", 0))
