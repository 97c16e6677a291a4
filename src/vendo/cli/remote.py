"""What the client commands (``vendo push``, ``vendo run``) share: the server URL, the
token, an HTTP client and readable errors.

The server is ``VENDO_URL`` (default ``http://127.0.0.1:5000``). The token is the first
of ``VENDO_API_TOKEN``, ``REPLICATE_API_TOKEN`` and the ``api_token`` file that
``vendo serve`` writes in its data dir (``VENDO_DATA_DIR``), for a server on the same
machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import httpx

__all__ = ["TOKEN_FILE", "api_client", "fail", "resolve_token", "server_url"]

TOKEN_FILE = "api_token"


def server_url(url: str | None = None) -> str:
    from vendo.config import Settings

    return (url or Settings().url).rstrip("/")  # type: ignore[call-arg]


def resolve_token(token: str | None = None, data_dir: Path | None = None) -> str | None:
    if token:
        return token
    for name in ("VENDO_API_TOKEN", "REPLICATE_API_TOKEN"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    if data_dir is None:
        from vendo.config import Settings

        data_dir = Path(Settings().data_dir)  # type: ignore[call-arg]
    path = Path(data_dir) / TOKEN_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def api_client(url: str | None = None, token: str | None = None) -> httpx.Client:
    found = resolve_token(token)
    if not found:
        raise click.ClickException(
            "no API token: set VENDO_API_TOKEN (or REPLICATE_API_TOKEN), or run this on the "
            "server's machine where its data dir holds api_token"
        )
    return httpx.Client(
        base_url=server_url(url),
        headers={"Authorization": f"Bearer {found}", "User-Agent": "vendo-cli"},
        timeout=httpx.Timeout(30.0, read=None),
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
    raise click.ClickException(f"{response.status_code}: {text}")
