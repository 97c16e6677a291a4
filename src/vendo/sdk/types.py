"""Types a predictor annotates its inputs and outputs with (``cog.types``)."""

from __future__ import annotations

import io
import os
import pathlib
import shutil
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterator, Optional, TypeVar

__all__ = [
    "AsyncConcatenateIterator",
    "ConcatenateIterator",
    "ExperimentalFeatureWarning",
    "File",
    "Opaque",
    "Path",
    "Secret",
    "URLFile",
    "URLPath",
]

_T_co = TypeVar("_T_co", covariant=True)


class ExperimentalFeatureWarning(Warning):
    """Kept so that models which filter this warning still import."""


class Path(pathlib.PosixPath):
    """A local file: inputs arrive downloaded, outputs are uploaded by the platform."""


class File(io.IOBase):
    """Deprecated file input/output type: inputs arrive as an open binary file."""


@dataclass(frozen=True)
class Secret:
    """A string that never shows itself in logs, reprs or echoed inputs."""

    secret_value: Optional[str] = None

    def get_secret_value(self) -> Optional[str]:
        return self.secret_value

    def __repr__(self) -> str:
        return "Secret('**********')" if self.secret_value is not None else "Secret(None)"

    def __str__(self) -> str:
        return "**********" if self.secret_value is not None else ""


class Opaque:
    """Marker for ``Annotated[T, Opaque]``: the schema says object, the value is untouched."""


class ConcatenateIterator(Iterator[_T_co]):
    """An iterator of string tokens that clients should join into one text."""

    def __next__(self) -> _T_co:  # pragma: no cover - a type hint, never instantiated
        raise StopIteration


class AsyncConcatenateIterator(AsyncIterator[_T_co]):
    """The async form of :class:`ConcatenateIterator`."""

    async def __anext__(self) -> _T_co:  # pragma: no cover - a type hint only
        raise StopAsyncIteration


class URLPath(Path):
    """A path whose content comes from a URL, fetched on first :meth:`convert`.

    Vendo downloads input URLs in the parent process, so models receive plain
    :class:`Path` objects; this class exists for models that build one themselves.
    """

    _source_url = ""

    @classmethod
    def from_url(cls, url: str) -> URLPath:
        name = os.path.basename(urllib.parse.urlparse(url).path) or "file"
        path = cls(tempfile.mkdtemp(prefix="vendo-urlpath-"), name)
        path._source_url = url
        return path

    def convert(self) -> Path:
        if self._source_url and not self.exists():
            self.parent.mkdir(parents=True, exist_ok=True)
            with urllib.request.urlopen(self._source_url) as response, open(self, "wb") as out:
                shutil.copyfileobj(response, out)
        return Path(self)


class URLFile(io.IOBase):
    """A read-only binary file whose bytes are fetched lazily from a URL."""

    def __init__(self, url: str, filename: Optional[str] = None) -> None:
        super().__init__()
        self.url = url
        self.name = filename or os.path.basename(urllib.parse.urlparse(url).path) or "file"
        self._response: Any = None

    def _stream(self) -> Any:
        if self._response is None:
            self._response = urllib.request.urlopen(self.url)
        return self._response

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._stream().read(None if size < 0 else size)
        return data

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        super().close()

    def __repr__(self) -> str:
        return f"URLFile({self.url!r})"
