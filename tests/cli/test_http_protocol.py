"""The servers' HTTP protocol joins a write with the next one of the same loop turn (a
response's headers and body) into one write on the socket, and keeps everything
written, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from support import free_port, until_async
from vendo.cli.http import _OneWrite, http_protocol


class _Counting:
    """A real socket transport whose writes are counted on their way to it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def close(self) -> None:
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)


class _Pair:
    """A loopback TCP connection: the server side's transport (counted) and the client's
    streams."""

    def __init__(
        self,
        counting: _Counting,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        server: asyncio.AbstractServer,
    ) -> None:
        self.counting, self.reader, self.writer, self.server = counting, reader, writer, server

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()
        self.counting.transport.abort()
        self.server.close()
        await self.server.wait_closed()


async def _connected_pair() -> _Pair:
    accepted: asyncio.Future[asyncio.Transport] = asyncio.get_running_loop().create_future()

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            accepted.set_result(transport)

    server = await asyncio.get_running_loop().create_server(Accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return _Pair(_Counting(await accepted), reader, writer, server)


async def test_writes_of_one_turn_leave_in_one_write_and_later_ones_after_it() -> None:
    pair = await _connected_pair()
    counting = pair.counting
    try:
        one = _OneWrite(counting, asyncio.get_running_loop())  # type: ignore[arg-type]
        one.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
        assert counting.writes == []  # held: the body may follow in this turn
        one.write(b"hello")
        assert counting.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"]
        await asyncio.sleep(0)
        assert len(counting.writes) == 1
        one.write(b"later")  # a streamed part, alone in its turn: held until the next
        assert counting.writes[1:] == []
        await asyncio.sleep(0)
        assert counting.writes[1:] == [b"later"]
        # many parts in one turn: the first two joined, the rest straight out, in order
        for part in (b"a", b"b", b"c", b"d"):
            one.write(part)
        assert counting.writes[2:] == [b"ab", b"c", b"d"]
        await asyncio.sleep(0)
        assert counting.writes[2:] == [b"ab", b"c", b"d"]
        one.write(b"last")
        one.close()  # what was written before the close goes out with it
        assert counting.writes[5:] == [b"last"]
        received = await pair.reader.read()  # to the end: the close came after the bytes
        assert received == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhellolaterabcdlast"
    finally:
        await pair.close()


async def test_a_write_held_when_the_peer_is_gone_is_dropped_without_error() -> None:
    pair = await _connected_pair()
    counting = pair.counting
    try:
        one = _OneWrite(counting, asyncio.get_running_loop())  # type: ignore[arg-type]
        one.write(b"headers")
        counting.transport.abort()  # the client went away before the turn ended
        await asyncio.sleep(0)
        assert counting.writes == []
        assert one.is_closing()
    finally:
        await pair.close()


async def _json(_: Request) -> JSONResponse:
    return JSONResponse({"text": "x" * 3000})


async def _events(_: Request) -> StreamingResponse:
    async def stream() -> Any:
        for i in range(3):
            yield f"data: {i}\n\n"
            await asyncio.sleep(0.05)

    return StreamingResponse(stream(), media_type="text/event-stream")


async def test_uvicorn_serves_whole_and_streamed_responses_through_it() -> None:
    app = Starlette(routes=[Route("/json", _json), Route("/events", _events)])
    port = free_port()
    config = uvicorn.Config(app, port=port, http=http_protocol(), ws="none", log_level="error")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await until_async(lambda: server.started)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(3):  # keep-alive: one connection, responses one after another
                reply = await client.get("/json")
                assert reply.status_code == 200
                assert reply.json() == {"text": "x" * 3000}
            async with client.stream("GET", "/events") as events:
                assert events.headers["content-type"].startswith("text/event-stream")
                lines = [line async for line in events.aiter_lines() if line]
        assert lines == ["data: 0", "data: 1", "data: 2"]
    finally:
        server.should_exit = True
        await task
