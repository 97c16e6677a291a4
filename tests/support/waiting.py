"""Waiting for a condition: the one polling loop of the test suite.

Tests wait for something observable (a status, a file, a request received), never for
a fixed time: a fixed sleep is either too short on a busy machine (flaky) or too long
everywhere else (slow). The deadline only bounds a wait that should end much sooner.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["until", "until_async"]

T = TypeVar("T")

# Short enough that a test does not idle noticeably after its condition holds, long
# enough that a poll of an HTTP server does not busy the (shared, small) machine.
INTERVAL = 0.02


def _message(what: str | Callable[[], str], last: object) -> str:
    text = what() if callable(what) else what
    return f"timed out waiting for {text} (last check gave {last!r})"


def until(
    check: Callable[[], T],
    *,
    timeout: float = 30.0,
    what: str | Callable[[], str] = "the condition",
    interval: float = INTERVAL,
) -> T:
    """Call ``check`` until it returns something truthy and return that; raise
    AssertionError naming ``what`` once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(_message(what, result))
        time.sleep(interval)


async def until_async(
    check: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 30.0,
    what: str | Callable[[], str] = "the condition",
    interval: float = INTERVAL,
) -> T:
    """:func:`until` for the event loop: ``check`` may be a plain or async callable."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(_message(what, result))
        await asyncio.sleep(interval)
