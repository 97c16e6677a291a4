"""Helpers shared by every test directory (tests are not a package: ``tests/`` is on
``sys.path`` through its conftest, so this is imported as ``support``).

Each helper exists here once: a free loopback port, a wait for a condition with a
deadline (the only polling loop the tests use), child processes started, stopped and
checked by PID, a loopback HTTP server on a thread, a webhook receiver, an ASGI app
served by uvicorn on a thread, a manual clock, and the webhook outbox's pending rows.
"""

from support.clock import ManualClock
from support.httpserver import http_server, start_http_server, stop_http_server
from support.net import free_port
from support.outbox import pending_deliveries
from support.processes import (
    children_of,
    http_ready,
    is_running,
    start_server,
    stop_process,
    wait_gone,
)
from support.receiver import Receiver
from support.threaded import serve_in_thread
from support.waiting import until, until_async

__all__ = [
    "ManualClock",
    "Receiver",
    "children_of",
    "free_port",
    "http_ready",
    "http_server",
    "is_running",
    "pending_deliveries",
    "serve_in_thread",
    "start_http_server",
    "start_server",
    "stop_http_server",
    "stop_process",
    "until",
    "until_async",
    "wait_gone",
]
