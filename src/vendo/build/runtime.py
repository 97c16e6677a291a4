"""Putting Vendo's model runtime into a built environment.

The runtime (``vendo/__init__.py``, ``vendo/sdk``, ``vendo/schema``, ``vendo/runner``)
is stdlib-only; ``vendo.runner.dist`` owns copying it and hashing it. Each environment
gets its own copy in ``<env>/vendo-runtime/`` plus a ``.pth`` file in site-packages
pointing at it (relative, so the environment stays relocatable): ``<env>/bin/python -m
vendo.runner`` then works with or without ``PYTHONPATH``, and nothing else of Vendo's
(pydantic, starlette, ...) is importable there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from types import ModuleType

__all__ = ["RUNTIME_DIR", "install_runtime", "link_runtime", "runtime_hash"]

RUNTIME_DIR = "vendo-runtime"
PTH_FILE = "_vendo_runtime.pth"
_PARTS = ("__init__.py", "sdk", "schema", "runner")


def _package_root() -> Path:
    import vendo

    return Path(vendo.__file__).resolve().parent


def _runtime_files() -> list[Path]:
    root = _package_root()
    files: list[Path] = []
    for part in _PARTS:
        path = root / part
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts))
    return files


def _dist() -> ModuleType | None:
    try:
        from vendo.runner import dist
    except ImportError:
        return None  # the runtime's own dist module is not there (yet)
    return dist


def runtime_hash() -> str:
    """Hash of the runtime's sources: part of every environment's key."""
    dist = _dist()
    if dist is not None and hasattr(dist, "runtime_hash"):
        return str(dist.runtime_hash())
    root = _package_root()
    digest = hashlib.sha256()
    for path in _runtime_files():
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def install_runtime(target: Path) -> Path:
    """Copy the runtime into ``target/vendo/``; returns ``target`` (the PYTHONPATH entry)."""
    dist = _dist()
    if dist is not None and hasattr(dist, "install_runtime"):
        return Path(dist.install_runtime(target))
    root = _package_root()
    for path in _runtime_files():
        dest = target / "vendo" / path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    return target


def link_runtime(env_dir: Path, site_packages: Path) -> Path:
    """Install the runtime into ``env_dir`` and point the env's site-packages at it."""
    target = install_runtime(env_dir / RUNTIME_DIR)
    relative = os.path.relpath(target, site_packages)
    # site.py joins relative .pth lines to the site-packages folder.
    (site_packages / PTH_FILE).write_text(relative + "\n", encoding="utf-8")
    return target
