"""The HTTP/1.1 protocol both servers run under uvicorn: one write per short response.

uvicorn's httptools protocol writes a response's status line and headers as soon as the
app sends ``http.response.start``, and its body at ``http.response.body``: two writes,
so two TCP segments with ``TCP_NODELAY`` (which both servers set). A prediction's reply
is a few hundred bytes of headers and about a kilobyte of JSON; its second segment
costs the server a system call and a pass through the TCP stack, and wakes the
client's side again. ``OneWriteHttpProtocol`` gives uvicorn's request cycles a
transport that holds a write until the loop's next turn and joins it with the next one
made in the same turn: the headers and the body of a response that is not streamed
leave in one write. A streamed response (server-sent events) keeps its timing: its
headers go out on the next turn at the latest, each event as it is written.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

__all__ = ["http_protocol"]


class _OneWrite:
    """A transport that holds a write until the loop's next turn and sends it with the
    write that follows it in the same turn, if any: a response's headers with its body.
    Only that one pair is joined: further writes of the turn go straight out, so a body
    streamed in many parts within one turn is never copied into one growing buffer."""

    __slots__ = ("_transport", "_loop", "_pending", "_scheduled")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: bytes | None = None
        self._scheduled = False  # a flush is due this turn

    def write(self, data: bytes) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            self._transport.write(pending + data)
        elif self._scheduled:
            self._transport.write(data)  # this turn's pair went out already
        else:
            self._pending = bytes(data)
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        data, self._pending = self._pending, None
        if data and not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()  # what was written before the close still goes out
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        # the rest of the transport interface (pause_reading, abort, ...), used rarely
        return getattr(self._transport, name)


def http_protocol() -> Any:
    """uvicorn's ``http`` setting: the one-write httptools protocol, or ``"h11"`` where
    httptools is not installed (a pure-Python install)."""
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class OneWriteHttpProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self.transport = _OneWrite(self.transport, self.loop)  # type: ignore[assignment]

    return OneWriteHttpProtocol
