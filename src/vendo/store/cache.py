"""A small in-memory cache for the reads every prediction request makes.

Each ``POST /v1/predictions`` needs the caller's token, the model and the version (a
deployment's prediction: the deployment and its current release too). They change
rarely, and a database read each costs more than the rest of the request (on SQLite a
thread hop and an ORM load; on PostgreSQL a round trip). The store keeps their recent
results here for ``ttl`` seconds. Its own writes to users, tokens, models, versions and
deployments clear the cache at once, and so do those of another process on the same
data dir (its stamp file, see ``Database.changed``); a change made by a process sharing
only the database (``sqlite3`` by hand, a server on another machine) shows within
``ttl``.

Each such read is a :class:`CachedRead`: a typed handle on one read of the store
(``store.cached.version``), so a caller names the read by attribute, not by a string,
and the type checker knows its arguments and what it returns.

Values are the store's detached rows, shared between readers: never change them.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Final, Generic, TypeVar, TypeVarTuple, Unpack

__all__ = ["MISS", "CachedRead", "Miss", "ReadCache"]

V = TypeVar("V")
Args = TypeVarTuple("Args")


class Miss(enum.Enum):
    """The type of :data:`MISS` (an enum member, so that ``is MISS`` narrows types)."""

    MISS = "MISS"

    def __repr__(self) -> str:
        return "MISS"


MISS: Final = Miss.MISS


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


class CachedRead(Generic[Unpack[Args], V]):
    """One blocking read of the store, kept in a shared :class:`ReadCache`.

    Calling it reads through: the database (blocking: off the event loop), and the
    value is kept unless the cache was cleared meanwhile. :meth:`peek` answers from
    memory only (no I/O: safe on the event loop)."""

    __slots__ = ("_cache", "_read", "name")

    def __init__(self, cache: ReadCache, name: str, read: Callable[[Unpack[Args]], V]) -> None:
        self._cache = cache
        self._read = read
        self.name = name

    def peek(self, *args: Unpack[Args]) -> V | Miss:
        """What the read returned lately, else :data:`MISS`."""
        value: V | Miss = self._cache.get((self, *args))
        return value

    def __call__(self, *args: Unpack[Args]) -> V:
        cache = self._cache
        generation = cache.generation
        value = self._read(*args)
        cache.put((self, *args), value, generation)
        return value

    def __repr__(self) -> str:
        return f"<cached read {self.name}>"
