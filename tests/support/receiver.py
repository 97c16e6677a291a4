"""A webhook receiver: a real HTTP server on 127.0.0.1 that records every POST.

It can go down and come back on the same port (a receiver that is away for a while),
answer with chosen statuses (``statuses``, consumed one per request, then 200) or by a
rule of the test's (``respond``), and answer slowly (``delay``). Each request is kept as
a dict: ``path``, ``headers`` (case-insensitive), ``body`` (bytes), ``status`` (the
answer given; None until then) and ``at`` (``time.monotonic()`` on arrival).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from support.httpserver import start_http_server, stop_http_server
from support.waiting import until

__all__ = ["Receiver"]

Request = dict[str, Any]
REDIRECTS = (301, 302, 303, 307, 308)


class Receiver:
    def __init__(
        self, port: int = 0, respond: Callable[[Request], int | None] | None = None
    ) -> None:
        self.port = port
        self.respond = respond  # the status for a request; None: the default rule
        self.statuses: list[int] = []
        self.delay = 0.0
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                request: Request = {
                    "path": self.path,
                    "headers": httpx.Headers(dict(self.headers.items())),
                    "body": self.rfile.read(int(self.headers.get("content-length", 0))),
                    "at": time.monotonic(),
                    "status": None,  # not answered yet
                }
                with receiver.lock:
                    receiver.requests.append(request)
                if receiver.delay:
                    time.sleep(receiver.delay)  # not a wait: a slow receiver
                with receiver.lock:
                    status = receiver.respond(request) if receiver.respond else None
                    if status is None:
                        status = receiver.statuses.pop(0) if receiver.statuses else 200
                    request["status"] = status
                self.send_response(status)
                if status in REDIRECTS:  # somewhere no receiver listens
                    self.send_header("location", "http://127.0.0.1:1/elsewhere")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = start_http_server(Handler, self.port)
        self.port = self._server.server_address[1]
        return self

    def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            stop_http_server(server)

    def __enter__(self) -> Receiver:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def received(self) -> list[Request]:
        """Every request so far (a copy)."""
        with self.lock:
            return list(self.requests)

    def bodies(self) -> list[Any]:
        """The JSON body of every request so far."""
        return [json.loads(r["body"]) for r in self.received()]

    def wait_for(
        self, predicate: Callable[[list[Request]], Any], timeout: float = 30.0
    ) -> list[Request]:
        """The requests, once ``predicate(requests)`` holds."""

        def seen() -> list[list[Request]]:
            got = self.received()
            return [got] if predicate(got) else []  # [got]: an empty list may satisfy it

        what = lambda: f"webhooks; so far: {[r['body'][:200] for r in self.received()]}"  # noqa: E731
        return until(seen, timeout=timeout, what=what)[0]

    def wait_for_bodies(self, predicate: Callable[[list[Any]], Any], timeout: float = 30.0) -> None:
        """Return once ``predicate(bodies)`` holds (the bodies as JSON)."""
        self.wait_for(lambda rs: predicate([json.loads(r["body"]) for r in rs]), timeout)
