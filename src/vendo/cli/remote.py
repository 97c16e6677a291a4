"""What the client commands (``vendo push``, ``vendo run``, ...) share: finding the
server, the token, an HTTP client and readable errors.

The server is the first of ``--url``/``VENDO_URL``, the address a ``vendo serve`` on
this machine recorded in its data dir (``server.json``, see :func:`record_server`) and
``http://127.0.0.1:<VENDO_PORT>`` (5000 by default), where ``vendo serve`` listens. The
token is the first of ``VENDO_API_TOKEN``, ``REPLICATE_API_TOKEN`` and the ``api_token``
file that ``vendo serve`` writes in the same data dir (``VENDO_DATA_DIR``, default
``./.vendo``).

Every request goes through :class:`ServerClient`: a server that cannot be reached
(refused, timed out, TLS, cut off mid-reply) becomes one ``click`` error line naming
the URL tried and how to point the command elsewhere, never a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx

__all__ = [
    "SERVER_FILE",
    "TOKEN_FILE",
    "Server",
    "ServerClient",
    "api_client",
    "fail",
    "find_server",
    "forget_server",
    "record_server",
    "recorded_server",
    "resolve_token",
    "server_url",
]

TOKEN_FILE = "api_token"
SERVER_FILE = "server.json"


def _data_dir() -> Path:
    from vendo.config import Settings

    return Path(Settings().data_dir)  # type: ignore[call-arg]


# --- the server's own record of where it listens ---------------------------------------


def record_server(data_dir: Path, url: str) -> Path:
    """Write ``server.json`` (URL and this process's PID) once the port is bound, so
    client commands run on this machine find a server on a non-default port."""
    path = Path(data_dir) / SERVER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{SERVER_FILE}.{os.getpid()}")
    temp.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n", encoding="utf-8")
    os.replace(temp, path)  # a reader never sees half a record
    return path


def forget_server(data_dir: Path) -> None:
    """Remove ``server.json`` on a clean stop, unless another server has replaced it."""
    path = Path(data_dir) / SERVER_FILE
    record = _read_record(path)
    if record is not None and record.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def recorded_server(data_dir: Path | None = None) -> str | None:
    """The URL in ``server.json``; None when there is none or its server is gone (a
    record left by a killed server names a PID that no longer runs)."""
    record = _read_record(Path(data_dir if data_dir is not None else _data_dir()) / SERVER_FILE)
    if record is None:
        return None
    url, pid = record.get("url"), record.get("pid")
    if not isinstance(url, str) or not isinstance(pid, int) or pid <= 0 or not _alive(pid):
        return None
    return url


# --- which server a client command talks to --------------------------------------------


@dataclass(frozen=True)
class Server:
    url: str
    # how the URL was found, for error messages: "option", "record" or "default"
    source: str
    record: Path | None = None

    def unreachable(self, reason: str) -> str:
        """One line: what failed, where, and how to point the command elsewhere."""
        head = f"cannot reach the Vendo server at {self.url} ({reason})"
        if self.source == "option":
            return f"{head}: check --url / VENDO_URL"
        if self.source == "record":
            return (
                f"{head}, the address `vendo serve` recorded in {self.record}: is it still "
                "running? Set VENDO_URL (or --url) to use another server"
            )
        return (
            f"{head}: start one with `vendo serve`, or set VENDO_URL (or --url) to the URL "
            "your server listens on"
        )


def find_server(url: str | None = None, data_dir: Path | None = None) -> Server:
    """``--url``/``VENDO_URL`` (click passes both as ``url``), else ``server.json`` in
    the data dir, else the default. An explicit setting always wins, as for the token."""
    from vendo.config import Settings

    settings = Settings()  # type: ignore[call-arg]  # VENDO_URL, VENDO_PORT, also from .env
    url = url or settings.url
    if url:
        if not url.startswith(("http://", "https://")):
            raise click.ClickException(
                f"the server URL {url!r} (--url / VENDO_URL) must start with http:// or https://"
            )
        return Server(url.rstrip("/"), "option")
    folder = Path(data_dir if data_dir is not None else _data_dir())
    recorded = recorded_server(folder)
    if recorded:
        return Server(recorded.rstrip("/"), "record", folder / SERVER_FILE)
    # the port `vendo serve` listens on by the same setting (README: VENDO_PORT)
    return Server(f"http://127.0.0.1:{settings.port}", "default")


def server_url(url: str | None = None) -> str:
    return find_server(url).url


def resolve_token(token: str | None = None, data_dir: Path | None = None) -> str | None:
    if token:
        return token
    for name in ("VENDO_API_TOKEN", "REPLICATE_API_TOKEN"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    path = Path(data_dir if data_dir is not None else _data_dir()) / TOKEN_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


# --- the HTTP client ------------------------------------------------------------------


def _reason(exc: httpx.RequestError) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out: {text}" if str(exc) else "timed out"
    lowered = text.lower()
    if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
        return f"TLS error: {text}"
    if "refused" in lowered:
        return "connection refused"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the connection broke off: {text}"
    return text


class _Guarded(httpx.SyncByteStream):
    """A streamed reply whose read errors (server gone mid-reply) are one line too."""

    def __init__(self, inner: Any, server: Server) -> None:
        self.inner = inner
        self.server = server

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.inner
        except httpx.RequestError as exc:
            raise click.ClickException(self.server.unreachable(_reason(exc))) from None

    def close(self) -> None:
        self.inner.close()


class ServerClient(httpx.Client):
    """An httpx client for one Vendo server whose transport errors are one-line
    ``click`` errors naming the URL tried (see :meth:`Server.unreachable`)."""

    def __init__(self, server: Server, **kwargs: Any) -> None:
        super().__init__(base_url=server.url, **kwargs)
        self.server = server

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        try:
            response = super().send(request, **kwargs)
        except httpx.RequestError as exc:
            raise click.ClickException(self.server.unreachable(_reason(exc))) from None
        if kwargs.get("stream"):
            response.stream = _Guarded(response.stream, self.server)
        return response


def api_client(
    url: str | None = None, token: str | None = None, *, timeout: httpx.Timeout | None = None
) -> ServerClient:
    found = resolve_token(token)
    if not found:
        raise click.ClickException(
            "no API token: set VENDO_API_TOKEN (or REPLICATE_API_TOKEN), or run this on the "
            "server's machine where its data dir holds api_token"
        )
    return ServerClient(
        find_server(url),
        headers={"Authorization": f"Bearer {found}", "User-Agent": "vendo-cli"},
        # no read limit: `vendo run` waits on the request, `vendo push` follows a build
        timeout=timeout or httpx.Timeout(30.0, read=None),
        follow_redirects=False,
    )


def fail(response: httpx.Response) -> None:
    """Raise a ClickException with the server's problem+json detail for a 4xx/5xx."""
    if response.status_code < 400:
        return
    detail: Any = None
    try:
        body = response.json()
        detail = body.get("detail") if isinstance(body, dict) else None
    except ValueError:
        pass
    text = detail or response.text.strip() or response.reason_phrase
    if response.status_code == 401:
        text = (
            f"{text.rstrip('.')}: check the token (the first of --token, VENDO_API_TOKEN, "
            "REPLICATE_API_TOKEN and the api_token file in the data dir of `vendo serve`)"
        )
    raise click.ClickException(f"{response.status_code}: {text}")
