"""Everything before ``ready``: concurrency, weights, and ``setup()`` under its timeout."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import threading
import time
from typing import Any, Optional

from vendo.schema.records import FILE, PATH, LoadError
from vendo.sdk.types import Path, URLPath

from .capture import Capture
from .channel import Channel
from .loader import Bound, Loaded

__all__ = ["call_setup", "resolve_max_concurrency", "start_setup_watchdog"]

# After COG_SETUP_TIMEOUT, setup that ignores the timeout signal gets this long.
_SETUP_GRACE = 5.0


class _SetupTimeout(BaseException):
    pass


def resolve_max_concurrency(loaded: Loaded, cli_value: Optional[int]) -> int:
    env = os.environ.get("COG_MAX_CONCURRENCY", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise LoadError(f"COG_MAX_CONCURRENCY must be an integer, got {env!r}") from None
    elif cli_value is not None:
        value = cli_value
    else:
        value = loaded.info.max_concurrency or 1
    if value < 1:
        raise LoadError(f"max concurrency must be at least 1, got {value}")
    if value > 1 and not loaded.info.is_async:
        raise LoadError(
            f"max concurrency is {value}, but {loaded.method}() is synchronous; "
            "only async predictors can run more than one prediction at once"
        )
    return value


def _setup_timeout() -> Optional[float]:
    raw = os.environ.get("COG_SETUP_TIMEOUT", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise LoadError(f"COG_SETUP_TIMEOUT must be a number of seconds, got {raw!r}") from None
    return value if value > 0 else None


def _weights(loaded: Loaded) -> Any:
    raw = os.environ.get("COG_WEIGHTS") or None
    weights_type = loaded.info.weights_type
    if raw is None or weights_type is None:
        return raw
    if raw.startswith(("http://", "https://")):
        path: Path = URLPath.from_url(raw).convert()
    else:
        path = Path(raw)
    if weights_type.kind == FILE:
        return open(path, "rb")  # noqa: SIM115 - handed to the model's setup
    assert weights_type.kind == PATH
    return path


def call_setup(bound: Bound, loaded: Loaded, loop: Optional[asyncio.AbstractEventLoop]) -> None:
    setup = bound.setup
    if setup is None:
        return
    kwargs = {"weights": _weights(loaded)} if loaded.info.setup_weights else {}
    timeout = _setup_timeout()
    if inspect.iscoroutinefunction(setup):
        coro = asyncio.wait_for(setup(**kwargs), timeout)
        try:
            result = loop.run_until_complete(coro) if loop is not None else asyncio.run(coro)
        except asyncio.TimeoutError:
            raise TimeoutError(f"setup() timed out after {timeout} seconds") from None
    else:
        previous = None
        if timeout is not None:

            def on_alarm(signum: int, frame: Any) -> None:
                raise _SetupTimeout()

            previous = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, timeout)
        started = time.monotonic()
        try:
            try:
                result = setup(**kwargs)
            finally:
                if timeout is not None:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, previous)
        except _SetupTimeout:
            raise TimeoutError(f"setup() timed out after {timeout} seconds") from None
        if timeout is not None and time.monotonic() - started > timeout:
            raise TimeoutError(f"setup() timed out after {timeout} seconds")
    if result is not None:
        raise LoadError(f"setup() must return None, got {type(result).__name__}")


def start_setup_watchdog(channel: Channel, capture: Capture, done: threading.Event) -> None:
    timeout = _setup_timeout()
    if timeout is None:
        return

    def watch() -> None:
        if done.wait(timeout + _SETUP_GRACE):
            return
        capture.drain(0.5)
        channel.send(
            {
                "type": "setup_failed",
                "error": f"TimeoutError: setup() timed out after {timeout} seconds",
            }
        )
        os._exit(1)

    threading.Thread(target=watch, name="vendo-setup-watchdog", daemon=True).start()
