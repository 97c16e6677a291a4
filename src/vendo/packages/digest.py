"""The content hash that names a version: same files, same id.

The hash covers what a model is made of (each file's path, content and executable
bit, and each symlink's target) and nothing incidental (times, owners, archive
compression), so re-pushing an unchanged project yields the same version id.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["content_hash"]

_CHUNK = 1 << 20


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def content_hash(root: Path) -> str:
    """64 lowercase hex characters: sha256 over the sorted tree under ``root``."""
    entries: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in list(dirnames) + filenames:
            full = base / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                entries.append((rel, f"L\x00{os.readlink(full)}"))
            elif full.is_file():
                executable = "x" if os.stat(full).st_mode & 0o100 else "-"
                entries.append((rel, f"F\x00{executable}\x00{_file_digest(full)}"))
        # symlinked folders were recorded as links above; never descend into them
        dirnames[:] = [d for d in dirnames if not (base / d).is_symlink()]
    h = hashlib.sha256(b"vendo-package-v1\n")
    for rel, desc in sorted(entries):
        h.update(rel.encode("utf-8", "surrogateescape") + b"\x00" + desc.encode() + b"\n")
    return h.hexdigest()
