"""File storage: uploads, prediction outputs and (in scaled mode) model packages, in a
local folder or an S3-compatible bucket (:mod:`vendo.files.blobs`), served at signed,
expiring URLs.

A signed URL is ``/v1/files/{id}/download?owner=&expiry=&signature=`` where the
signature is the URL-safe base64 HMAC-SHA256 of ``"{owner} {id} {expiry}"`` under a
server secret kept in the store (so every API process of a deployment agrees).

Output values in the store keep a stable reference, ``{"__vendo_file_id__": id}``;
:meth:`FileStorage.render` turns references into freshly signed absolute URLs each
time a prediction is read. All methods block: call them off the event loop.

Downloads go through the server (``/v1/files/...`` streams the bytes from the bucket)
rather than redirecting to a presigned bucket URL: the link a client holds stays the
server's own, with the same expiry, file name and CORS headers on every backend, and the
bucket may stay on a private network (MinIO inside a cluster) that clients never reach.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import mimetypes
import os
import re
import secrets
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode

from vendo.config import Settings
from vendo.errors import PayloadTooLarge
from vendo.files.blobs import Blobs, LocalBlobs, blobs_from_settings
from vendo.store import FileRow, Store, new_id, utcnow

__all__ = [
    "FILE_ID_KEY",
    "FILE_MARKER",
    "INPUT_MARKER",
    "FileStorage",
    "LocalStorage",
    "has_shared_inputs",
]

FILE_MARKER = "__vendo_file__"  # what the runner sends: {"__vendo_file__": "/abs/path"}
FILE_ID_KEY = "__vendo_file_id__"  # what the store keeps: {"__vendo_file_id__": "<id>"}
# an input file kept in the bucket for whichever host runs the prediction (scaled mode):
# {"__vendo_input__": "<file id>"} in run_input, a local path once that host fetched it
INPUT_MARKER = "__vendo_input__"
_CHUNK = 1 << 20
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_name(name: str) -> str:
    base = Path(name.replace("\\", "/")).name
    cleaned = _SAFE_NAME.sub("_", base).strip("._") or "file"
    return cleaned[:200]


def guess_type(name: str) -> str:
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


class FileStorage:
    """Files in ``blobs`` (a folder, or a bucket) with their records in ``store``.
    ``scratch`` is a local folder for files on their way in or out."""

    def __init__(
        self,
        blobs: Blobs | Path,
        store: Store,
        *,
        scratch: Path | None = None,
        signed_url_expiry: float = 3600.0,
        file_expiry: float = 86400.0,
        max_upload_bytes: int = 100 * 1024 * 1024,
    ) -> None:
        self.blobs: Blobs = LocalBlobs(blobs) if isinstance(blobs, Path) else blobs
        local = self.blobs.local_path("")
        # on disk, files come in next to where they go: a rename, not a copy
        self.scratch = Path(scratch) if scratch is not None else (local or Path(".")) / ".incoming"
        self.store = store
        self.signed_url_expiry = signed_url_expiry
        self.file_expiry = file_expiry
        self.max_upload_bytes = max_upload_bytes
        self._key: bytes | None = None

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> FileStorage:
        """``<data dir>/files``, or the bucket of ``VENDO_STORAGE_URL`` (checked now:
        :class:`~vendo.errors.StorageError` when it cannot be reached)."""
        blobs = blobs_from_settings(settings)
        shared = blobs.local_path("") is None
        return cls(
            blobs,
            store,
            scratch=Path(settings.data_dir) / "tmp" if shared else None,
            signed_url_expiry=settings.signed_url_expiry,
            file_expiry=settings.file_expiry,
            max_upload_bytes=settings.max_upload_bytes,
        )

    # --- signing ---------------------------------------------------------------------
    @property
    def key(self) -> bytes:
        if self._key is None:
            value = self.store.meta.value("file_signing_key", secrets.token_hex(32))
            self._key = value.encode("ascii")
        return self._key

    def signature(self, file_id: str, owner: str, expiry: int) -> str:
        mac = hmac.new(self.key, f"{owner} {file_id} {expiry}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).decode("ascii").rstrip("=")

    def signed_path(self, file_id: str, owner: str, now: float | None = None) -> str:
        """``/v1/files/{id}/download?...``, valid for ``signed_url_expiry`` seconds."""
        expiry = int((now if now is not None else time.time()) + self.signed_url_expiry)
        query = urlencode(
            {"owner": owner, "expiry": expiry, "signature": self.signature(file_id, owner, expiry)}
        )
        return f"/v1/files/{file_id}/download?{query}"

    def verify(self, file_id: str, owner: str, expiry: str, signature: str) -> bool:
        """True for an untampered, unexpired signature."""
        # isascii: int() refuses some digits isdigit() accepts ("²"); 20 digits is past
        # any real expiry and keeps int() of a huge string away
        if not (expiry.isascii() and expiry.isdigit() and len(expiry) <= 20):
            return False
        if int(expiry) < time.time():
            return False
        expected = self.signature(file_id, owner, int(expiry)).encode()
        # as bytes: compare_digest raises on str with non-ASCII characters
        return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))

    @property
    def shared(self) -> bool:
        """Whether the files live in a bucket every server and agent shares."""
        return self.blobs.local_path("") is None

    # --- writing ---------------------------------------------------------------------
    def _scratch_file(self) -> Path:
        self.scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.scratch, prefix="in-")
        os.close(fd)
        return Path(name)

    def save_upload(
        self,
        owner_id: int,
        source: BinaryIO,
        *,
        name: str,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
        expires_at: datetime | None = None,
    ) -> FileRow:
        """Store an uploaded file (copied in chunks; :class:`PayloadTooLarge` over the
        cap) and record it; it expires after ``file_expiry`` seconds unless told."""
        file_id = new_id()
        key = _key(file_id, name)
        incoming = self._scratch_file()
        md5, sha256, size = hashlib.md5(), hashlib.sha256(), 0
        try:
            with incoming.open("wb") as out:
                while chunk := source.read(_CHUNK):
                    size += len(chunk)
                    if size > self.max_upload_bytes:
                        raise PayloadTooLarge(
                            f"the file is larger than the {self.max_upload_bytes} byte limit"
                        )
                    md5.update(chunk)
                    sha256.update(chunk)
                    out.write(chunk)
            self.blobs.put(key, incoming, move=True)
        finally:
            incoming.unlink(missing_ok=True)
        now = utcnow()
        row = FileRow(
            id=file_id,
            kind="upload",
            owner_id=owner_id,
            name=name or key.rsplit("/", 1)[-1],
            content_type=content_type or guess_type(name),
            size=size,
            md5=md5.hexdigest(),
            sha256=sha256.hexdigest(),
            metadata_=metadata or {},
            key=key,
            created_at=now,
            expires_at=expires_at or now + timedelta(seconds=self.file_expiry),
        )
        return self.store.files.add(row)

    def save_output(self, prediction_id: str, owner_id: int, source: Path) -> dict[str, str]:
        """Move a file the runner wrote into storage as an output of the prediction (it
        lives until the prediction's data is removed); returns the reference to keep in
        the prediction's output, ``{"__vendo_file_id__": id}``."""
        return {FILE_ID_KEY: self.save_output_file(prediction_id, owner_id, source).id}

    def save_output_file(self, prediction_id: str, owner_id: int, source: Path) -> FileRow:
        """:meth:`save_output`, returning the file's record."""
        return self._move_in(source, "output", owner_id, prediction_id)

    def save_weights(self, owner_id: int, source: Path) -> FileRow:
        """Move a training's weights file into storage. It belongs to no prediction and
        never expires: the version made from it runs with it for as long as it exists
        (the training's own data may be removed long before)."""
        return self._move_in(source, "weights", owner_id, None)

    def _move_in(
        self, source: Path, kind: str, owner_id: int, prediction_id: str | None
    ) -> FileRow:
        file_id = new_id()
        key = _key(file_id, source.name)
        md5, sha256, size = hashlib.md5(), hashlib.sha256(), 0
        with source.open("rb") as f:
            while chunk := f.read(_CHUNK):
                size += len(chunk)
                md5.update(chunk)
                sha256.update(chunk)
        self.blobs.put(key, source, move=True)
        name = key.rsplit("/", 1)[-1]
        row = FileRow(
            id=file_id,
            kind=kind,
            owner_id=owner_id,
            prediction_id=prediction_id,
            name=name,
            content_type=guess_type(name),
            size=size,
            md5=md5.hexdigest(),
            sha256=sha256.hexdigest(),
            metadata_={},
            key=key,
            created_at=utcnow(),
            expires_at=None,
        )
        return self.store.files.add(row)

    def encode_outputs(self, prediction_id: str, owner_id: int, value: Any) -> Any:
        """Replace every runner file marker ``{"__vendo_file__": path}`` in ``value``
        with a stored reference ``{"__vendo_file_id__": id}``; the scheduler calls this
        on each output before it goes to the store."""

        return _walk(
            value, FILE_MARKER, lambda path: self.save_output(prediction_id, owner_id, Path(path))
        )

    # --- input files (scaled mode) ---------------------------------------------------
    def share_inputs(
        self, prediction_id: str, owner_id: int, run_input: dict[str, Any], folder: Path
    ) -> dict[str, Any]:
        """``run_input`` with each file fetched into ``folder`` (a local path) moved to
        the bucket and replaced by ``{"__vendo_input__": id}``: the prediction may run on
        another host. Each is a file record of kind ``input`` of the prediction, deleted
        with its other files (retention). Unchanged on local storage."""
        if not self.shared:
            return run_input
        inside = Path(folder).resolve()

        def share(value: Any) -> Any:
            if isinstance(value, list):
                return [share(v) for v in value]
            if not isinstance(value, str) or Path(value).parent.resolve() != inside:
                return value
            row = self._move_in(Path(value), "input", owner_id, prediction_id)
            return {INPUT_MARKER: row.id}

        return {name: share(value) for name, value in run_input.items()}

    def localize_inputs(self, run_input: dict[str, Any], folder: Path) -> dict[str, Any]:
        """The input as a runner on this host takes it: each ``{"__vendo_input__": id}``
        fetched from the bucket into ``folder``. FileNotFoundError when one is gone."""

        def fetch(file_id: str) -> str:
            row = self.store.files.get(file_id)
            if row is None:
                raise FileNotFoundError(f"input file {file_id} is gone")
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{file_id}-{row.key.rsplit('/', 1)[-1]}"
            self.blobs.fetch(row.key, target)
            return str(target)

        return {name: _walk(value, INPUT_MARKER, fetch) for name, value in run_input.items()}

    # --- model packages (scaled mode) ------------------------------------------------
    def save_package(self, digest: str, folder: Path) -> None:
        """Keep a pushed package (the unpacked ``folder``) in the shared bucket, so any
        agent can run it. On local storage the folder itself is the package: nothing to
        do."""
        if not self.shared or self.blobs.exists(_package_key(digest)):
            return
        archive = self._scratch_file()
        try:
            with tarfile.open(archive, "w:gz") as tar:
                tar.add(folder, arcname=".")
            self.blobs.put(_package_key(digest), archive, move=True)
        finally:
            archive.unlink(missing_ok=True)

    def restore_package(self, digest: str, target: Path) -> bool:
        """Unpack the package ``digest`` from the bucket into ``target`` (made here);
        False when the bucket does not hold it (or storage is local)."""
        if not self.shared:
            return False
        archive = self._scratch_file()
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".restoring-", dir=target.parent))
        try:
            try:
                self.blobs.fetch(_package_key(digest), archive)
            except FileNotFoundError:
                return False
            with tarfile.open(archive, "r:gz") as tar:
                # "data": no links out of the folder, no devices, no absolute names
                tar.extractall(staging, filter="data")
            try:
                staging.rename(target)
            except OSError:
                if not target.is_dir():  # else another restore got there first
                    raise
            return True
        finally:
            archive.unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)

    # --- reading ---------------------------------------------------------------------
    def local_path(self, row: FileRow) -> Path | None:
        """The file on this machine's disk (local storage), else None."""
        return self.blobs.local_path(row.key)

    def location(self, row: FileRow) -> str:
        """Where the file is: its path on this machine's disk, else its bucket URL
        (``s3://bucket/prefix/key``)."""
        local = self.local_path(row)
        return str(local) if local is not None else self.blobs.where + row.key

    def chunks(self, row: FileRow) -> Iterator[bytes]:
        """The file's bytes in pieces; FileNotFoundError when they are gone."""
        return self.blobs.chunks(row.key)

    def copy_to(self, row: FileRow, target: Path) -> None:
        """A copy of the file at ``target``; FileNotFoundError when it is gone."""
        self.blobs.fetch(row.key, target)

    def render(self, value: Any, base_url: str, owner: str) -> Any:
        """Output references -> absolute signed download URLs (signed now)."""
        now = time.time()
        base = base_url.rstrip("/")
        return _walk(value, FILE_ID_KEY, lambda fid: base + self.signed_path(fid, owner, now))

    # --- deleting --------------------------------------------------------------------
    def delete(self, row: FileRow) -> None:
        self.blobs.delete(row.key)
        self.store.files.delete(row.id)

    def delete_prediction_files(self, prediction_id: str) -> int:
        rows = self.store.files.of_prediction(prediction_id)
        for row in rows:
            self.delete(row)
        return len(rows)

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete uploads past their ``expires_at``."""
        rows = self.store.files.expired(now or utcnow())
        for row in rows:
            self.delete(row)
        return len(rows)


def has_shared_inputs(run_input: dict[str, Any] | None) -> bool:
    """Whether ``run_input`` holds input files kept in the bucket (to fetch first)."""

    def marked(value: Any) -> bool:
        if isinstance(value, list):
            return any(marked(v) for v in value)
        return isinstance(value, dict) and INPUT_MARKER in value

    return any(marked(v) for v in (run_input or {}).values())


# The name from before files could live in a bucket; code written against it still works.
LocalStorage = FileStorage


def _key(file_id: str, name: str) -> str:
    return f"{file_id[:2]}/{file_id}/{_safe_name(name)}"


def _package_key(digest: str) -> str:
    return f"packages/{digest}.tar.gz"


def _walk(value: Any, marker: str, replace: Callable[[str], Any]) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and marker in value and isinstance(value[marker], str):
            return replace(value[marker])
        return {k: _walk(v, marker, replace) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, marker, replace) for v in value]
    return value
