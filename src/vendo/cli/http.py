"""The HTTP/1.1 protocol both servers run under uvicorn: one write per short response.

uvicorn's httptools protocol writes a response's status line and headers as soon as the
app sends ``http.response.start``, and its body at ``http.response.body``: two writes,
so two TCP segments with ``TCP_NODELAY`` (which both servers set). A prediction's reply
is a few hundred bytes of headers and about a kilobyte of JSON; its second segment
costs the server a system call and a pass through the TCP stack, and wakes the
client's side again. :class:`OneWriteHttpProtocol` gives uvicorn's request cycles a
transport that holds the first write until the loop's next turn, so writes made in the
same turn (the headers and the body of any response that is not streamed) leave in
one. A streamed response (server-sent events) keeps its timing: its headers go out on
the next turn, each event as it is written.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

__all__ = ["http_protocol"]


class _OneWrite:
    """A transport that joins the writes made in one loop turn into one."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = bytes(data)
            self._loop.call_soon(self._flush)
        else:
            self._pending += data

    def _flush(self) -> None:
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
