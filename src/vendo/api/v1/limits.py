"""Rate limits per API token: token buckets, one for creating predictions and trainings
and one for every other request, refilled at a steady rate and holding a burst.

The buckets live in this server's memory: in scaled mode each API process limits on its
own, so a token gets the configured rate from each of them (docs/usage.md). They are
off unless ``VENDO_RATE_LIMIT_CREATE`` / ``VENDO_RATE_LIMIT_OTHER`` are set. A
throttled request is refused before it does anything, with a 429 problem+json (see
:class:`vendo.errors.RateLimited`).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from vendo.config import Settings
from vendo.errors import RateLimited

__all__ = ["Bucket", "RateLimiter", "is_create"]

# Buckets kept per kind; the least recently used go first (a full bucket forgotten is
# the same as a new one, so only a token idle that long loses nothing).
MAX_TOKENS = 10_000


@dataclass
class Bucket:
    """A token bucket: ``burst`` requests at once, refilled at ``rate`` per second."""

    rate: float
    burst: float
    level: float
    at: float

    def take(self, now: float) -> float:
        """Take one request's worth; 0.0 when granted, else the seconds until one is."""
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now
        if self.level >= 1.0:
            self.level -= 1.0
            return 0.0
        return (1.0 - self.level) / self.rate


def is_create(method: str, path: str) -> bool:
    """Whether a request creates a prediction or a training (the ``create`` bucket)."""
    return method == "POST" and path.rstrip("/").endswith(("/predictions", "/trainings"))


class _Kind:
    def __init__(self, name: str, per_minute: float, burst: int) -> None:
        self.name = name
        self.rate = per_minute / 60.0
        self.burst = float(max(1, burst))
        self.buckets: OrderedDict[int, Bucket] = OrderedDict()

    def take(self, key: int, now: float) -> tuple[float, Bucket]:
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(self.rate, self.burst, self.burst, now)
            if len(self.buckets) > MAX_TOKENS:
                self.buckets.popitem(last=False)
        else:
            self.buckets.move_to_end(key)
        return bucket.take(now), bucket


class RateLimiter:
    """The buckets of this server, keyed by API token id."""

    def __init__(
        self,
        create: tuple[float, int],
        other: tuple[float, int],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._create = _Kind("create", *create) if create[0] > 0 else None
        self._other = _Kind("other", *other) if other[0] > 0 else None
        self._clock = clock
        self.enabled = self._create is not None or self._other is not None

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(
            (settings.rate_limit_create, settings.rate_limit_create_burst),
            (settings.rate_limit_other, settings.rate_limit_other_burst),
        )

    def check(self, token_id: int, scope: MutableMapping[str, Any]) -> None:
        """Count the request (its ASGI ``scope``) of ``token_id``, once however often a
        route authenticates; raise :class:`RateLimited` when its bucket is empty (the
        request must then do nothing)."""
        if not self.enabled or scope.get("vendo.rate_counted"):
            return
        scope["vendo.rate_counted"] = True
        kind = self._create if is_create(scope["method"], scope["path"]) else self._other
        if kind is None:
            return
        wait, bucket = kind.take(token_id, self._clock())
        if wait <= 0.0:
            return
        seconds = max(1, math.ceil(wait))
        unit = "second" if seconds == 1 else "seconds"
        error = RateLimited(
            f"Request was throttled. Expected available in {seconds} {unit}.", seconds
        )
        # until the bucket is full again: what the ratelimit-reset header says
        reset = max(1, math.ceil((bucket.burst - bucket.level) / bucket.rate))
        error.headers.update(
            {
                "ratelimit-limit": str(int(bucket.burst)),
                "ratelimit-remaining": str(int(bucket.level)),
                "ratelimit-reset": str(reset),
            }
        )
        raise error
