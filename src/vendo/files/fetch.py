"""Download a prediction's input files: ``http(s)://`` URLs and ``data:`` URIs.

Files land in a per-prediction folder and the child gets local paths, never bytes
(ARCHITECTURE.md section 1). Downloads are capped in size and time. Which addresses may
be reached is decided by :func:`vendo.files.addresses.refusal`, the one policy shared
with webhooks (link-local, metadata, unspecified and other special-purpose addresses
never; private and loopback ones only while ``allow_private`` is on). Redirects are
followed by hand so every hop is checked.

The check holds at connect time: :func:`guarded_transport` resolves each host itself,
checks every address, and connects to a checked address, so a name that resolves to
something else a moment later (DNS rebinding) gets nowhere. Webhooks use it too.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import mimetypes
import posixpath
import re
import socket
from collections.abc import AsyncIterable, Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpcore
import httpx

from vendo.errors import PayloadTooLarge, RequestError
from vendo.files.addresses import host_refusal, parse_host, refusal

__all__ = [
    "FetchError",
    "check_address",
    "decode_data_uri",
    "fetch_input",
    "guarded_transport",
    "is_fetchable",
    "write_capped",
]

MAX_REDIRECTS = 5
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class FetchError(RequestError):
    """An input URL could not be downloaded; the message says why."""


def is_fetchable(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://", "data:"))


def check_address(address: str, *, allow_private: bool) -> None:
    """Refuse an IP address we must never connect to on a caller's behalf."""
    why = refusal(address, allow_private=allow_private)
    if why is not None:
        raise FetchError(f"refusing to fetch from {why}")


async def _check_host(host: str, port: int, *, allow_private: bool) -> None:
    why = host_refusal(host, allow_private=allow_private)
    if why is not None:
        raise FetchError(f"refusing to fetch from {why}")
    if parse_host(host) is not None:
        return  # an address, judged above: nothing to resolve
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(f"cannot resolve {host}: {exc.strerror}") from exc
    for info in infos:
        check_address(str(info[4][0]), allow_private=allow_private)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """TCP connections only to addresses ``check`` lets through (it raises otherwise):
    the host is resolved here and the connection made to the checked address itself.
    TLS still verifies the certificate against the URL's host name."""

    def __init__(self, check: Callable[[str], None]) -> None:
        self._check = check
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            try:
                self._check(address)
            except Exception as exc:
                raise httpcore.ConnectError(str(exc)) from exc
        error: Exception = httpcore.ConnectError(f"cannot connect to {host}")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable through this client")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(check: Callable[[str], None]) -> httpx.AsyncHTTPTransport:
    """An httpx transport that connects only where ``check(address)`` does not raise
    (see :class:`_GuardedBackend`); no proxies from the environment."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx takes no network backend; the connection pool it wraps (httpcore's) does.
    pool = transport._pool
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=pool._ssl_context,
        max_connections=pool._max_connections,
        max_keepalive_connections=pool._max_keepalive_connections,
        keepalive_expiry=pool._keepalive_expiry,
        network_backend=_GuardedBackend(check),
    )
    return transport


async def write_capped(chunks: AsyncIterable[bytes], path: Path, limit: int, too_large: str) -> int:
    """Write a stream of bytes to ``path`` and return its size; over ``limit`` bytes,
    :class:`PayloadTooLarge` (``too_large``). On any failure the file is removed."""
    size = 0
    try:
        with path.open("wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(too_large)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return size


def _unique(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/<n>/name`` when that name is taken: keeping the
    name intact matters, predictors look at the extension."""
    path = folder / name
    n = 0
    while path.exists():
        n += 1
        path = folder / str(n) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _name_from_url(url: str) -> str:
    name = posixpath.basename(unquote(urlsplit(url).path))
    name = _SAFE_NAME.sub("_", name).strip("._")
    return name or "file"


def decode_data_uri(uri: str) -> tuple[bytes, str]:
    """``data:[<type>][;base64],<data>`` -> (bytes, media type)."""
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise FetchError("malformed data URI: no comma")
    params = header.split(";")
    media_type = params[0].strip() or "text/plain"
    if "base64" in (p.strip().lower() for p in params[1:]):
        try:
            return base64.b64decode(payload, validate=False), media_type
        except (binascii.Error, ValueError) as exc:
            raise FetchError(f"malformed base64 in data URI: {exc}") from exc
    return unquote(payload).encode("latin-1", "replace"), media_type


def _extension(media_type: str) -> str:
    ext = mimetypes.guess_extension(media_type.lower(), strict=False)
    if ext is None:
        return ""
    # mimetypes prefers odd spellings for a few common types
    return {".jpe": ".jpg", ".jpeg": ".jpg"}.get(ext, ext)


async def fetch_input(
    url: str,
    folder: Path,
    *,
    client: httpx.AsyncClient | None = None,
    max_bytes: int = 100 * 1024 * 1024,
    max_data_uri_bytes: int = 10 * 1024 * 1024,
    timeout: float = 300.0,
    allow_private: bool = True,
) -> Path:
    """Save the file behind ``url`` into ``folder`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    if url.startswith("data:"):
        # base64 is 4/3 of the decoded size: refuse before decoding a huge string
        if len(url) > max_data_uri_bytes * 4 // 3 + 1024:
            raise PayloadTooLarge(f"data URI larger than {max_data_uri_bytes} bytes")
        data, media_type = decode_data_uri(url)
        if len(data) > max_data_uri_bytes:
            raise PayloadTooLarge(f"data URI larger than {max_data_uri_bytes} bytes")
        path = _unique(folder, "file" + _extension(media_type))
        await asyncio.to_thread(path.write_bytes, data)
        return path
    if not url.startswith(("http://", "https://")):
        raise FetchError(f"unsupported URL scheme in {url[:40]!r}: use http(s):// or data:")
    own_client = client is None
    if client is None:
        client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # an environment proxy would be a way around the transport
            transport=guarded_transport(lambda a: check_address(a, allow_private=allow_private)),
        )
    try:
        return await asyncio.wait_for(
            _download(client, url, folder, max_bytes, allow_private), timeout
        )
    except asyncio.TimeoutError:
        raise FetchError(f"downloading {url} took longer than {timeout:g} s") from None
    except httpx.InvalidURL as exc:  # e.g. octal parts, which httpx does not read
        raise FetchError(f"invalid URL {url[:80]!r}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"downloading {url} failed: {exc}") from exc
    finally:
        if own_client:
            await client.aclose()


async def _download(
    client: httpx.AsyncClient, url: str, folder: Path, max_bytes: int, allow_private: bool
) -> Path:
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"unsupported URL {url[:80]!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        await _check_host(parts.hostname, port, allow_private=allow_private)
        async with client.stream("GET", url, follow_redirects=False) as response:
            if response.is_redirect and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            if response.status_code >= 400:
                raise FetchError(f"downloading {url} failed: HTTP {response.status_code}")
            length = response.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise PayloadTooLarge(f"{url} is larger than {max_bytes} bytes")
            path = _unique(folder, _name_from_url(url))
            too_large = f"{url} is larger than {max_bytes} bytes"
            await write_capped(response.aiter_bytes(), path, max_bytes, too_large)
            return path
    raise FetchError(f"too many redirects fetching {url}")
