"""Output files of ``vendo serve-model``: the child's file markers become URLs.

The child never sends file bytes; it sends ``{"__vendo_file__": "/path"}`` (see
docs/design/runtime.md). Here each marker becomes a base64 ``data:`` URL, or, with
``--upload-url U``, the file is PUT to ``U/<basename>`` and the output is the
``Location`` the server answered (else the URL it was put to), query removed.
A failed upload raises :class:`OutputUploadError`, which fails the prediction.
"""

from __future__ import annotations

import asyncio
import base64
import mimetypes
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import httpx

from vendo.runner.protocol import FILE_KEY

__all__ = ["OutputFiles", "OutputUploadError", "media_type"]


class OutputUploadError(Exception):
    """An output file could not be uploaded."""


def media_type(path: Path) -> str:
    guessed, _ = mimetypes.guess_type(path.name, strict=False)
    return guessed or "application/octet-stream"


def _data_url(path: Path) -> str:
    data = path.read_bytes()
    return f"data:{media_type(path)};base64,{base64.b64encode(data).decode('ascii')}"


class OutputFiles:
    """Turns file markers into ``data:`` URLs or uploaded URLs."""

    def __init__(self, upload_url: str | None = None, client: httpx.AsyncClient | None = None):
        self.upload_url = upload_url.rstrip("/") if upload_url else None
        self.client = client

    async def convert(self, value: Any) -> Any:
        if isinstance(value, dict):
            if FILE_KEY in value and len(value) == 1:
                return await self.file(Path(value[FILE_KEY]))
            return {k: await self.convert(v) for k, v in value.items()}
        if isinstance(value, list):
            # one by one, so uploads keep the order the model produced them in
            return [await self.convert(v) for v in value]
        return value

    async def file(self, path: Path) -> str:
        if self.upload_url is None:
            return await asyncio.to_thread(_data_url, path)
        return await self._upload(path)

    async def _upload(self, path: Path) -> str:
        assert self.upload_url is not None
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=300.0, trust_env=False)
        url = f"{self.upload_url}/{quote(path.name)}"
        try:
            data = await asyncio.to_thread(path.read_bytes)
            response = await self.client.put(
                url,
                content=data,
                headers={"Content-Type": media_type(path)},
                follow_redirects=True,
            )
        except (OSError, httpx.HTTPError) as exc:
            raise OutputUploadError(f"uploading {path.name} to {url} failed: {exc}") from exc
        if response.status_code >= 300:
            raise OutputUploadError(
                f"uploading {path.name} to {url} failed: HTTP {response.status_code}"
            )
        final = urljoin(str(response.url), response.headers.get("location") or "")
        parts = urlsplit(final)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
