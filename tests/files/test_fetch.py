from __future__ import annotations

import base64
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from support import http_server
from vendo.errors import PayloadTooLarge
from vendo.files.fetch import FetchError, check_address, fetch_input

BIG = b"x" * (3 * 1024 * 1024)


@pytest.fixture
def origin() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/redirect-metadata"):
                self.send_response(302)
                self.send_header("location", "http://169.254.169.254/latest/meta-data")
                self.end_headers()
                return
            if self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("location", "/files/moved.txt")
                self.end_headers()
                return
            if self.path.startswith("/missing"):
                self.send_response(404)
                self.end_headers()
                return
            body = BIG if self.path.startswith("/big") else b"hello"
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with http_server(Handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


async def test_data_uri_is_named_file_ext(tmp_path: Path) -> None:
    uri = "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode()
    path = await fetch_input(uri, tmp_path)
    assert path.name == "file.png"
    assert path.read_bytes() == b"\x89PNG"
    second = await fetch_input(uri, tmp_path)
    assert second != path and second.name == "file.png"


async def test_plain_data_uri(tmp_path: Path) -> None:
    path = await fetch_input("data:text/plain,hello%20there", tmp_path)
    assert path.read_text() == "hello there"
    assert path.name == "file.txt"


async def test_http_download_named_from_url(origin: str, tmp_path: Path) -> None:
    path = await fetch_input(f"{origin}/files/cat%20pic.jpg?sig=1", tmp_path)
    assert path.name == "cat_pic.jpg"
    assert path.read_bytes() == b"hello"


async def test_redirect_followed(origin: str, tmp_path: Path) -> None:
    path = await fetch_input(f"{origin}/redirect", tmp_path)
    assert path.name == "moved.txt"


async def test_size_cap(origin: str, tmp_path: Path) -> None:
    with pytest.raises(PayloadTooLarge):
        await fetch_input(f"{origin}/big.bin", tmp_path, max_bytes=1024)
    assert not list(tmp_path.rglob("big.bin"))
    uri = "data:;base64," + base64.b64encode(b"y" * 4096).decode()
    with pytest.raises(PayloadTooLarge):
        await fetch_input(uri, tmp_path, max_data_uri_bytes=1024)


async def test_http_error_is_reported(origin: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="404"):
        await fetch_input(f"{origin}/missing.txt", tmp_path)


async def test_link_local_and_metadata_always_refused(origin: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="link-local"):
        await fetch_input("http://169.254.169.254/latest/meta-data", tmp_path)
    with pytest.raises(FetchError, match="link-local"):
        await fetch_input(f"{origin}/redirect-metadata", tmp_path)
    with pytest.raises(FetchError):
        check_address("fd00:ec2::254", allow_private=True)
    with pytest.raises(FetchError):
        check_address("::ffff:169.254.169.254", allow_private=True)


async def test_private_refused_when_not_allowed(origin: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="private"):
        await fetch_input(f"{origin}/a.txt", tmp_path, allow_private=False)
    check_address("93.184.216.34", allow_private=False)


async def test_unsupported_scheme(tmp_path: Path) -> None:
    with pytest.raises(FetchError):
        await fetch_input("file:///etc/passwd", tmp_path)


def _resolver(answers: list[str]) -> Any:
    """A stand-in for DNS (the edge of the machine): each lookup of a name ending in
    ``.rebind.test`` answers the next address of ``answers``; other names resolve as
    usual."""
    import asyncio
    import socket

    real = asyncio.get_running_loop().getaddrinfo

    async def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not str(host).endswith(".rebind.test"):
            return await real(host, port, *args, **kwargs)
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, int(port)))]

    return getaddrinfo


async def test_the_connection_goes_to_the_address_that_was_checked(
    origin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    port = origin.rsplit(":", 1)[1]
    loop = asyncio.get_running_loop()
    # no resolver but ours knows this name: a download proves we connected to our answer
    monkeypatch.setattr(loop, "getaddrinfo", _resolver(["127.0.0.1"]))
    path = await fetch_input(f"http://files.rebind.test:{port}/a.txt", tmp_path)
    assert path.read_bytes() == b"hello"


async def test_a_name_that_rebinds_after_the_check_is_refused(
    origin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    port = origin.rsplit(":", 1)[1]
    loop = asyncio.get_running_loop()
    # the first lookup (the check) says loopback, the next (the connection) metadata
    monkeypatch.setattr(loop, "getaddrinfo", _resolver(["127.0.0.1", "169.254.169.254"]))
    with pytest.raises(FetchError, match="link-local"):
        await fetch_input(f"http://files.rebind.test:{port}/a.txt", tmp_path)


async def test_webhooks_connect_only_to_checked_addresses(
    origin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    import httpx

    from vendo.files.fetch import guarded_transport

    def refuse_loopback(address: str) -> None:
        if address.startswith("127."):
            raise ValueError(f"refusing {address}")

    port = origin.rsplit(":", 1)[1]
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", _resolver(["127.0.0.1"]))
    async with httpx.AsyncClient(transport=guarded_transport(refuse_loopback)) as client:
        with pytest.raises(httpx.ConnectError, match="refusing 127.0.0.1"):
            await client.get(f"http://hook.rebind.test:{port}/x")
    async with httpx.AsyncClient(transport=guarded_transport(lambda a: None)) as client:
        assert (await client.get(f"{origin}/ok")).text == "hello"
