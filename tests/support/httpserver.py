"""A small HTTP server of the test's own (a receiver, an origin for downloads) on a
thread, on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["http_server", "start_http_server", "stop_http_server"]

# serve_forever's default (0.5 s) is how long shutdown() can take: half a second a test
POLL = 0.02


def start_http_server(
    handler: type[BaseHTTPRequestHandler],
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer,
) -> ThreadingHTTPServer:
    """Serve ``handler`` on ``host:port`` (0: a free port, see ``server_address``)."""
    server = server_class((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(POLL,), daemon=True)
    thread.start()
    return server


def stop_http_server(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


@contextmanager
def http_server(
    handler: type[BaseHTTPRequestHandler], port: int = 0
) -> Iterator[ThreadingHTTPServer]:
    """:func:`start_http_server` for the duration of a ``with``."""
    server = start_http_server(handler, port)
    try:
        yield server
    finally:
        stop_http_server(server)
