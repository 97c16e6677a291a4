"""Content-addressed model environments under ``<data dir>/envs``.

Layout::

    envs/<key>/                 a finished environment (a relocatable venv)
    envs/<key>/.vendo-env.json  marker, written last: its presence means "complete"
    envs/<key>/.vendo-last-used touched whenever a build reuses or creates it
    envs/.tmp-<key>-<pid>-<rand> a build in progress (or an interrupted one)
    envs/.locks/<key>.lock      fcntl lock held while a key is being built or removed

A build happens in a temporary folder and is renamed into place once the marker is in
it, so a folder named after a key is always complete; a killed build leaves only a
``.tmp-`` folder, which the next build of that key (holding the lock) deletes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MARKER", "EnvInfo", "EnvStore"]

MARKER = ".vendo-env.json"
LAST_USED = ".vendo-last-used"
_TMP = ".tmp-"
_TRASH = ".trash-"


@dataclass(frozen=True)
class EnvInfo:
    key: str
    path: Path
    python: str
    created: float
    last_used: float
    info: dict[str, Any]

    def size(self) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.path):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(root, name)).st_size
        return total


class EnvStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir).resolve() / "envs"

    def path(self, key: str) -> Path:
        return self.root / key

    def is_ready(self, key: str) -> bool:
        return (self.path(key) / MARKER).is_file()

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Exclusive lock on one key, across processes; released if the holder dies."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{key}.lock", "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def new_temp(self, key: str) -> Path:
        """A fresh folder to build ``key`` in. Call with the key's lock held."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(f"{_TMP}{key}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        final = self.path(key)
        if final.exists() and not (final / MARKER).is_file():
            self._discard(final)
        return self.root / f"{_TMP}{key}-{os.getpid()}-{secrets.token_hex(4)}"

    def commit(self, key: str, temp: Path, info: dict[str, Any]) -> Path:
        """Write the marker into ``temp`` and rename it into place. Lock held."""
        info = {**info, "key": key, "created": time.time()}
        marker = temp / MARKER
        with open(marker, "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        (temp / LAST_USED).touch()
        final = self.path(key)
        os.rename(temp, final)
        return final

    def touch(self, key: str) -> None:
        with contextlib.suppress(OSError):
            (self.path(key) / LAST_USED).touch()

    def get(self, key: str) -> EnvInfo | None:
        path = self.path(key)
        try:
            info = json.loads((path / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        try:
            last_used = (path / LAST_USED).stat().st_mtime
        except OSError:
            last_used = float(info.get("created", 0))
        return EnvInfo(
            key=key,
            path=path,
            python=str(info.get("python", "?")),
            created=float(info.get("created", 0)),
            last_used=last_used,
            info=info,
        )

    def all(self) -> list[EnvInfo]:
        if not self.root.is_dir():
            return []
        found = []
        for child in sorted(self.root.iterdir()):
            if child.name.startswith(".") or not child.is_dir():
                continue
            env = self.get(child.name)
            if env is not None:
                found.append(env)
        return found

    def remove(self, key: str) -> bool:
        """Delete one environment; False if there was none."""
        with self.lock(key):
            final = self.path(key)
            if not final.exists():
                return False
            self._discard(final)
            return True

    def leftovers(self) -> list[Path]:
        """Interrupted builds and half-removed folders."""
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if p.name.startswith((_TMP, _TRASH))]

    def clean_leftovers(self) -> int:
        """Delete leftovers whose key is not being built right now."""
        removed = 0
        for path in self.leftovers():
            key = path.name.split("-")[1] if path.name.count("-") >= 2 else ""
            if path.name.startswith(_TMP) and key:
                if not self._try_lock_and(key, path):
                    continue
            else:
                shutil.rmtree(path, ignore_errors=True)
            removed += 1
        return removed

    def _try_lock_and(self, key: str, path: Path) -> bool:
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{key}.lock", "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a build of that key is running
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return True

    def _discard(self, path: Path) -> None:
        # Rename first so the key's folder disappears at once, then delete at leisure.
        trash = self.root / f"{_TRASH}{path.name}-{secrets.token_hex(4)}"
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
