"""Putting Vendo's model runtime into a built environment.

``vendo.runner.dist`` owns what the runtime is (copying it, hashing it). Each
environment gets its own copy in ``<env>/vendo-runtime/`` plus a ``.pth`` file in
site-packages pointing at it with a relative path (site.py joins relative lines to the
site-packages folder), so ``<env>/bin/python -m vendo.runner`` works with or without
``PYTHONPATH`` and the environment stays relocatable. Nothing else of Vendo's
(pydantic, starlette, ...) is importable there.
"""

from __future__ import annotations

import os
from pathlib import Path

from vendo.runner import dist

__all__ = ["PTH_FILE", "RUNTIME_DIR", "link_runtime", "runtime_hash"]

RUNTIME_DIR = "vendo-runtime"
PTH_FILE = "_vendo_runtime.pth"


def runtime_hash() -> str:
    """Hash of the runtime's sources: part of every environment's key."""
    return dist.runtime_hash()


def link_runtime(env_dir: Path, site_packages: Path) -> Path:
    """Install the runtime into ``env_dir`` and point the env's site-packages at it."""
    target = dist.install_runtime(env_dir / RUNTIME_DIR)
    relative = os.path.relpath(target, site_packages)
    (site_packages / PTH_FILE).write_text(relative + "\n", encoding="utf-8")
    return target
