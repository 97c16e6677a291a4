"""Where the bytes of stored files live: a local folder, or an S3-compatible bucket.

:class:`vendo.files.storage.FileStorage` keeps the records (the ``files`` table) and the
signing; a :class:`Blobs` backend keeps the bytes under a key such as
``ab/abcdef.../out.png`` or ``packages/<digest>.tar``. ``VENDO_STORAGE_URL`` picks the
backend (:func:`blobs_from_settings`): unset, ``<data dir>/files``; ``s3://bucket/prefix``,
the bucket (:mod:`vendo.files.s3`), which every server and agent of a deployment shares.
All methods block: call them off the event loop.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from vendo.config import Settings
from vendo.errors import StorageError

__all__ = ["Blobs", "LocalBlobs", "blobs_from_settings", "parse_storage_url"]

CHUNK = 1 << 20


class Blobs(Protocol):
    """The bytes of stored files, by key (a relative, ``/``-separated name)."""

    #: a short description for logs and errors ("/data/files", "s3://bucket/prefix")
    where: str

    def put(self, key: str, source: Path, *, move: bool = False) -> None:
        """Store the file at ``source`` under ``key`` (``move``: it may be consumed)."""

    def fetch(self, key: str, target: Path) -> None:
        """Copy the bytes of ``key`` into the file ``target`` (FileNotFoundError if none)."""

    def local_path(self, key: str) -> Path | None:
        """The file of ``key`` on this machine's disk, when the backend keeps it there."""

    def exists(self, key: str) -> bool: ...

    def chunks(self, key: str) -> Iterator[bytes]:
        """The bytes of ``key`` in pieces (FileNotFoundError before the first if none)."""

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""


class LocalBlobs:
    """Blobs in a folder: ``root/<key>``. The single-machine default."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.where = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def put(self, key: str, source: Path, *, move: bool = False) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if move:
            shutil.move(str(source), path)
        else:
            shutil.copyfile(source, path)

    def fetch(self, key: str, target: Path) -> None:
        shutil.copyfile(self._path(key), target)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def chunks(self, key: str) -> Iterator[bytes]:
        f = self._path(key).open("rb")  # raises here, before the first piece

        def read() -> Iterator[bytes]:
            with f:
                while chunk := f.read(CHUNK):
                    yield chunk

        return read()

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # a file's folder (``ab/<id>/``) holds only it: leave no empty folder behind
        parent = path.parent
        while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


def parse_storage_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")`` (prefix may be "")."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise StorageError(
            f"VENDO_STORAGE_URL must look like s3://bucket or s3://bucket/prefix, got {url!r}"
        )
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def blobs_from_settings(settings: Settings) -> Blobs:
    """The bucket of ``settings.storage_url`` when set, else ``<data dir>/files``."""
    if not settings.storage_url:
        return LocalBlobs(Path(settings.data_dir) / "files")
    from vendo.files.s3 import S3Blobs

    bucket, prefix = parse_storage_url(settings.storage_url)
    return S3Blobs.connect(bucket, prefix, endpoint_url=settings.storage_endpoint_url)
