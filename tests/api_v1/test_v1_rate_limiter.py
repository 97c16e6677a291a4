"""The token buckets of vendo.api.v1.limits, on a clock that moves only when told."""

from __future__ import annotations

from typing import Any

import pytest

from support import ManualClock
from vendo.api.v1.limits import RateLimiter, is_create
from vendo.errors import RateLimited


def _scope(method: str = "POST", path: str = "/v1/predictions") -> dict[str, Any]:
    return {"method": method, "path": path}


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = ManualClock()
    limiter = RateLimiter((60, 3), (0, 1), clock=clock.time)  # one a second, burst 3
    for _ in range(3):
        limiter.check(1, _scope())
    with pytest.raises(RateLimited) as caught:
        limiter.check(1, _scope())
    assert caught.value.retry_after == 1
    assert caught.value.headers["ratelimit-remaining"] == "0"
    assert caught.value.headers["ratelimit-reset"] == "3"  # until full again
    clock.advance(1.0)
    limiter.check(1, _scope())  # one more has come in
    with pytest.raises(RateLimited):
        limiter.check(1, _scope())
    clock.advance(100.0)  # never above the burst
    for _ in range(3):
        limiter.check(1, _scope())
    with pytest.raises(RateLimited):
        limiter.check(1, _scope())


def test_a_request_counts_once_and_other_requests_are_unlimited_when_off() -> None:
    clock = ManualClock()
    limiter = RateLimiter((6, 1), (0, 1), clock=clock.time)
    scope = _scope()
    limiter.check(7, scope)
    limiter.check(7, scope)  # the same request authenticating again
    with pytest.raises(RateLimited) as caught:
        limiter.check(7, _scope())
    assert caught.value.retry_after == 10
    assert caught.value.to_problem()["retry_after"] == 10
    for _ in range(100):
        limiter.check(7, _scope("GET", "/v1/predictions"))
    limiter.check(8, _scope())  # another token, another bucket


def test_off_by_default() -> None:
    from vendo.config import Settings

    limiter = RateLimiter.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert not limiter.enabled
    for _ in range(1000):
        limiter.check(1, _scope())


@pytest.mark.parametrize(
    ("method", "path", "create"),
    [
        ("POST", "/v1/predictions", True),
        ("POST", "/v1/models/a/b/predictions", True),
        ("POST", "/v1/deployments/a/b/predictions", True),
        ("POST", "/v1/models/a/b/versions/v/trainings", True),
        ("GET", "/v1/predictions", False),
        ("POST", "/v1/predictions/x/cancel", False),
        ("POST", "/v1/files", False),
    ],
)
def test_which_requests_are_creates(method: str, path: str, create: bool) -> None:
    assert is_create(method, path) is create
