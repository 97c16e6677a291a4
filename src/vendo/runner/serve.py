"""``serve``: capture output, load the model, run setup, then hand over to the worker."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import traceback
from typing import Any, Dict, NamedTuple, Optional

from vendo.schema.openapi import openapi_document
from vendo.schema.records import LoadError

from .capture import Capture, RoutedStream
from .channel import Channel, error_text
from .lifeline import watch_parent
from .limits import apply_limits
from .loader import Bound, Loaded, load, register_cog
from .setup import call_setup, resolve_max_concurrency, start_setup_watchdog
from .worker import Worker

__all__ = ["serve"]


def serve(project: str, ref: str, mode: str, cli_concurrency: Optional[int], fd: int) -> int:
    sock = socket.socket(fileno=fd)
    channel = Channel(sock)
    # Before anything slow (imports, setup): a parent killed meanwhile must not leave
    # this child, or what the model spawns, running for nobody.
    watch_parent(lambda: channel.exit(1))
    apply_limits(os.environ)

    def log_sink(pid: Optional[str], source: str, data: str) -> None:
        channel.send({"type": "log", "id": pid, "source": source, "data": data})

    capture = Capture(log_sink)
    capture.start()
    ready = _set_up(project, ref, mode, cli_concurrency, channel, capture)
    loop, max_concurrency = ready.loop, ready.max_concurrency
    worker = Worker(channel, capture, ready.loaded, ready.bound, max_concurrency, loop)
    # Async predictors are canceled without signals: nothing can raise mid-frame.
    channel.guard_main = loop is None
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, RoutedStream):
            stream.route_by_context = max_concurrency > 1
    capture.drain()
    channel.send(
        {
            "type": "ready",
            "openapi": ready.openapi,
            "max_concurrency": max_concurrency,
            "has_healthcheck": ready.bound.healthcheck is not None,
        }
    )
    reader = threading.Thread(target=worker.read_loop, name="vendo-reader", daemon=True)
    reader.start()
    if loop is not None:
        worker.serve_async(loop)
    else:
        worker.serve_sync()
    capture.drain()
    worker.out_dir.remove()
    return 0


class _Ready(NamedTuple):
    """A model set up and about to serve."""

    loaded: Loaded
    bound: Bound
    max_concurrency: int
    openapi: Dict[str, Any]
    loop: Optional[asyncio.AbstractEventLoop]  # async predictors' event loop


def _set_up(
    project: str,
    ref: str,
    mode: str,
    cli_concurrency: Optional[int],
    channel: Channel,
    capture: Capture,
) -> _Ready:
    """Loads the model and runs its setup; on any failure it reports ``setup_failed``
    and ends this process."""
    setup_done = threading.Event()
    loop: Optional[asyncio.AbstractEventLoop] = None
    try:
        os.chdir(project)
        sys.path.insert(0, os.getcwd())
        register_cog()
        loaded = load(os.getcwd(), ref, mode)
        for warning in loaded.info.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        max_concurrency = resolve_max_concurrency(loaded, cli_concurrency)
        if mode == "train":
            openapi = openapi_document(None, loaded.info)
        else:
            openapi = openapi_document(loaded.info)
        bound = loaded.instantiate()
        if loaded.info.is_async:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
        start_setup_watchdog(channel, capture, setup_done)
        call_setup(bound, loaded, loop)
        setup_done.set()
    except BaseException as exc:
        setup_done.set()
        if not isinstance(exc, LoadError):
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        else:
            print(f"error: {exc}", file=sys.stderr)
        capture.drain()
        channel.send({"type": "setup_failed", "error": error_text(exc)})
        # Threads the model started during setup must not keep a failed child alive.
        os._exit(1)
    return _Ready(loaded, bound, max_concurrency, openapi, loop)
