"""A small in-memory cache for the reads every prediction request makes.

Each ``POST /v1/predictions`` needs the caller's token, the model and the version. They
change rarely, and a database read each costs more than the rest of the request (on
SQLite a thread hop and an ORM load; on PostgreSQL a round trip). The store keeps their
recent results here for ``ttl`` seconds. Its own writes to users, tokens, models and
versions clear the cache at once; a change made by another process that shares the
database (another server, an agent, ``sqlite3`` by hand) shows within ``ttl``.

Values are the store's detached rows, shared between readers: never change them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

__all__ = ["MISS", "ReadCache"]


class _Miss:
    def __repr__(self) -> str:
        return "MISS"


MISS: Any = _Miss()


class ReadCache:
    """Values by key for ``ttl`` seconds, at most ``size`` of them (least recently used
    go first). ``ttl <= 0`` turns the cache off."""

    def __init__(self, ttl: float, size: int = 4096) -> None:
        self.ttl = ttl
        self.size = size
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        # Bumped by clear(): a value read before a change must not be put after it.
        self.generation = 0

    def get(self, key: Hashable) -> Any:
        """The value of ``key``, or :data:`MISS` when absent or expired."""
        item = self._items.get(key)
        if item is None:
            return MISS
        expires, value = item
        if expires < time.monotonic():
            self._items.pop(key, None)
            return MISS
        return value

    def put(self, key: Hashable, value: Any, generation: int | None = None) -> None:
        """Keep ``value``, unless the cache was cleared since ``generation`` (the
        :attr:`generation` seen before the value was read)."""
        if self.ttl <= 0 or (generation is not None and generation != self.generation):
            return
        items = self._items
        items[key] = (time.monotonic() + self.ttl, value)
        items.move_to_end(key)
        while len(items) > self.size:
            items.popitem(last=False)

    def clear(self) -> None:
        self.generation += 1
        self._items.clear()
