"""Secret inputs, sealed at rest.

The value of a ``cog.Secret`` input is never written in clear text: the API seals a
prediction's secret inputs before its row (or anything else) is written, and the
scheduler opens them only to hand the input to the runner child. The store keeps
``run_input`` as the other inputs plus one :data:`SEALED` entry, a Fernet token
(AES-128-CBC + HMAC-SHA256, from the ``cryptography`` package) of the secret ones.
Input names are Python identifiers, so :data:`SEALED` can never be one of them.

The key never lives in the database. It is ``VENDO_SECRETS_KEY`` when that is set
(every process sharing a PostgreSQL database needs the same one), else the file
``<data_dir>/secrets.key``, made on first use with mode 0600 and never readable by
anyone else, not even while it is being written. Without the key that sealed them a
prediction's secrets cannot be opened: it fails with a clear error
(:class:`vendo.errors.SecretsKeyError`), and nothing else is affected.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from vendo.config import Settings
from vendo.errors import SecretsKeyError

__all__ = ["KEY_FILE", "SEALED", "SecretBox", "is_sealed"]

SEALED = "$sealed"
KEY_FILE = "secrets.key"
_GENERATE = (
    "make one with: python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'"
)


def is_sealed(run_input: Mapping[str, Any] | None) -> bool:
    """Whether ``run_input`` holds sealed secrets (opening it needs the key)."""
    return bool(run_input) and SEALED in run_input  # type: ignore[operator]


class SecretBox:
    """Seals and opens the secret inputs of predictions with one key set.

    ``keys``: the first seals; every one of them opens (so a new key can be put first
    while predictions sealed with the old one are still pending). ``source`` names where
    the keys came from, for error messages."""

    def __init__(self, keys: Iterable[bytes], source: str) -> None:
        fernets = []
        for key in keys:
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise SecretsKeyError(
                    f"{source} is not a valid secrets key (32 url-safe base64 bytes); " + _GENERATE
                ) from None
        if not fernets:
            raise SecretsKeyError(f"{source} holds no secrets key; " + _GENERATE)
        self._fernet = MultiFernet(fernets)
        self.source = source

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The keys of ``VENDO_SECRETS_KEY``, else of the data dir's key file (made
        now when missing)."""
        if settings.secrets_key is not None:
            value = settings.secrets_key.get_secret_value()
            keys = [k.strip().encode() for k in value.split(",") if k.strip()]
            return cls(keys, "VENDO_SECRETS_KEY")
        path = Path(settings.data_dir) / KEY_FILE
        return cls([_key_file(path)], str(path))

    def seal(self, run_input: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
        """``run_input`` with the values of ``names`` (the secret inputs) replaced by one
        sealed entry; unchanged when none of them has a value."""
        hidden = {n: run_input[n] for n in names if run_input.get(n) is not None}
        if not hidden:
            return dict(run_input)
        kept = {k: v for k, v in run_input.items() if k not in hidden}
        token = self._fernet.encrypt(json.dumps(hidden, separators=(",", ":")).encode())
        kept[SEALED] = token.decode("ascii")
        return kept

    def open(self, run_input: Mapping[str, Any] | None) -> dict[str, Any]:
        """The input as the runner gets it: the sealed entry opened back into the secret
        inputs. Raises :class:`SecretsKeyError` when this key did not seal it."""
        opened = dict(run_input or {})
        token = opened.pop(SEALED, None)
        if token is None:
            return opened
        try:
            hidden = json.loads(self._fernet.decrypt(str(token).encode("ascii")))
        except (InvalidToken, ValueError, TypeError):
            raise SecretsKeyError(
                "the secret inputs of this prediction cannot be decrypted: the secrets key "
                f"({self.source}) is not the one they were sealed with (was it lost or "
                "replaced?); create the prediction again"
            ) from None
        opened.update(hidden)
        return opened


def _key_file(path: Path) -> bytes:
    """The key in ``path``; a new one written there first when there is none."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written in full under a private temporary name, then linked into place: readers
    # never see a partial key, and of two processes racing here one key wins for both.
    # O_EXCL + 0600 at creation: the file is never readable by others, not even briefly.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.write(fd, Fernet.generate_key() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        # another process made it first: use theirs
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretsKeyError(
                f"{path} may be read by other users (mode {stat.filemode(mode)}): "
                f"run chmod 600 {path}"
            )
        return f.read().strip()
