"""Copy the stdlib-only runtime into a model environment (docs/design/runtime.md)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import List

__all__ = ["install_runtime", "runtime_files", "runtime_hash"]

_PACKAGES = ("sdk", "schema", "runner")


def _vendo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def runtime_files() -> List[Path]:
    """The runtime's source files, relative to the ``vendo`` package, sorted."""
    root = _vendo_root()
    files = [Path("__init__.py")]
    for package in _PACKAGES:
        files += sorted(p.relative_to(root) for p in (root / package).rglob("*.py"))
    return files


def install_runtime(target: str | Path) -> Path:
    """Copy the runtime to ``target/vendo/`` (replacing an older copy) and return ``target``."""
    target = Path(target)
    root = _vendo_root()
    destination = target / "vendo"
    if destination.exists():
        shutil.rmtree(destination)
    for relative in runtime_files():
        out = destination / relative
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, out)
    return target


def runtime_hash() -> str:
    """A content hash of the runtime files: part of an environment's build key."""
    digest = hashlib.sha256()
    root = _vendo_root()
    for relative in runtime_files():
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update((root / relative).read_bytes() + b"\0")
    return digest.hexdigest()
