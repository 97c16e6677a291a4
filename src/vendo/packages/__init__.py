"""Model project packages: pack a project folder, extract an upload safely, hash it.

A *package* is a gzipped tar of a Cog project (``cog.yaml``, ``predict.py`` and
whatever they need). ``vendo push`` makes one with :func:`make_archive`; the server
unpacks it with :func:`safe_extract` and names the version by :func:`content_hash`
of the extracted tree, so the same content always gets the same version id.
"""

from __future__ import annotations

from vendo.packages.archive import (
    DEFAULT_EXCLUDES,
    IGNORE_FILES,
    PackageError,
    archive_bytes,
    iter_project_files,
    make_archive,
    safe_extract,
)
from vendo.packages.digest import content_hash

__all__ = [
    "DEFAULT_EXCLUDES",
    "IGNORE_FILES",
    "PackageError",
    "archive_bytes",
    "content_hash",
    "iter_project_files",
    "make_archive",
    "safe_extract",
]
