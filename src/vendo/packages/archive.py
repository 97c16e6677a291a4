"""Pack a project into a deterministic ``.tar.gz`` and unpack an uploaded one safely.

Packing is deterministic (sorted names, zeroed times and owners, normalised modes,
gzip without a timestamp) so the same project gives the same bytes. Extraction trusts
nothing in the archive: absolute names, ``..`` segments, links that lead outside the
target, device files and FIFOs are refused with :class:`PackageError` before anything
is written, and the total size and member count are capped.
"""

from __future__ import annotations

import gzip
import io
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from vendo.errors import BadRequest
from vendo.packages.ignore import IgnoreRules

__all__ = [
    "DEFAULT_EXCLUDES",
    "IGNORE_FILES",
    "PackageError",
    "ProjectFile",
    "archive_bytes",
    "iter_project_files",
    "make_archive",
    "safe_extract",
]

# Never part of a model: VCS data, local environments, caches, Vendo's own data dir.
DEFAULT_EXCLUDES = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    ".vendo",
    ".cog",
    "**/__pycache__",
    "**/*.pyc",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".DS_Store",
)
IGNORE_FILES = (".dockerignore", ".cogignore", ".vendoignore")

_MAX_MEMBERS = 100_000


class PackageError(BadRequest):
    """The archive is malformed, unsafe or too large."""

    title = "Invalid model package"


@dataclass(frozen=True)
class ProjectFile:
    """One entry to pack: a regular file (``link`` None) or a symlink inside the project."""

    relpath: str
    path: Path
    link: str | None = None


def _inside(root: Path, target: Path) -> bool:
    try:
        target.relative_to(root)
    except ValueError:
        return False
    return True


def iter_project_files(root: Path, extra_excludes: tuple[str, ...] = ()) -> Iterator[ProjectFile]:
    """The files ``vendo push`` sends, sorted by path.

    Symlinks that stay inside the project are kept as links; a link to a file outside
    it is replaced by the file's content (so weights linked from elsewhere travel);
    a link to a folder outside is skipped.
    """
    root = root.resolve()
    rules = IgnoreRules(list(DEFAULT_EXCLUDES) + list(extra_excludes))
    for name in IGNORE_FILES:
        path = root / name
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                rules.add(line)
    prune = not rules.has_negations
    found: list[ProjectFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel_base = base.relative_to(root).as_posix()
        prefix = "" if rel_base == "." else rel_base + "/"
        keep_dirs = []
        for d in sorted(dirnames):
            full = base / d
            rel = prefix + d
            if prune and rules.excluded(rel):
                continue
            if full.is_symlink():
                real = full.resolve()
                if _inside(root, real) and not rules.excluded(rel):
                    found.append(ProjectFile(rel, full, os.readlink(full)))
                continue
            keep_dirs.append(d)
        dirnames[:] = keep_dirs
        for f in filenames:
            full = base / f
            rel = prefix + f
            if rules.excluded(rel):
                continue
            if full.is_symlink():
                real = full.resolve()
                if _inside(root, real):
                    found.append(ProjectFile(rel, full, os.readlink(full)))
                elif real.is_file():
                    found.append(ProjectFile(rel, real))
                continue
            if full.is_file():
                found.append(ProjectFile(rel, full))
    yield from sorted(found, key=lambda pf: pf.relpath)


def make_archive(root: Path, out: BinaryIO, extra_excludes: tuple[str, ...] = ()) -> int:
    """Write the project at ``root`` as a deterministic tar.gz to ``out``; return the file count."""
    count = 0
    with (
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for pf in iter_project_files(root, extra_excludes):
            info = tarfile.TarInfo(pf.relpath)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if pf.link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = pf.link
                info.mode = 0o777
                tar.addfile(info)
            else:
                st = pf.path.stat()
                info.size = st.st_size
                info.mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
                with pf.path.open("rb") as fh:
                    tar.addfile(info, fh)
            count += 1
    return count


def _check_name(name: str) -> str:
    if not name or "\x00" in name:
        raise PackageError("archive member with an empty or invalid name")
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        raise PackageError(f"archive member {name!r} has an absolute path")
    if "\\" in name:
        raise PackageError(f"archive member {name!r} contains a backslash")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PackageError(f"archive member {name!r} contains '..'")
    return "/".join(parts)


def _check_member(member: tarfile.TarInfo, names: set[str]) -> str | None:
    """Validate one member; return its clean relative name (None for the root itself)."""
    name = _check_name(member.name)
    if member.isdev() or member.isfifo():
        raise PackageError(f"archive member {member.name!r} is a device file or FIFO")
    if member.issym():
        target = member.linkname
        if not target or target.startswith("/") or "\\" in target:
            raise PackageError(f"symlink {member.name!r} points outside the project ({target!r})")
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if joined == ".." or joined.startswith("../") or joined.startswith("/"):
            raise PackageError(f"symlink {member.name!r} points outside the project ({target!r})")
    elif member.islnk():
        target = _check_name(member.linkname)
        if target not in names:
            raise PackageError(f"hard link {member.name!r} points outside the project")
    elif not (member.isreg() or member.isdir()):
        raise PackageError(f"archive member {member.name!r} has an unsupported type")
    return name or None


def safe_extract(
    source: Path | BinaryIO,
    dest: Path,
    *,
    max_bytes: int = 10 * 1024**3,
    max_members: int = _MAX_MEMBERS,
) -> list[str]:
    """Extract a (gzipped) tar into the empty or new folder ``dest``; return the file names.

    Every member is checked before anything is written, then each is written with
    tarfile's ``data`` filter as a second line of defence (it re-checks resolved paths,
    which catches link chains a name check alone cannot see).
    """
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    try:
        if isinstance(source, Path):
            tar = tarfile.open(source, mode="r:*")  # noqa: SIM115 - closed below
        else:
            tar = tarfile.open(fileobj=source, mode="r:*")  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise PackageError(f"not a tar archive: {exc}") from exc
    with tar:
        total = 0
        names: set[str] = set()
        checked: list[tarfile.TarInfo] = []
        count = 0
        while True:
            # one header at a time, so a bomb of tiny members stops at the limit
            try:
                member = tar.next()
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise PackageError(f"corrupt archive: {exc}") from exc
            if member is None:
                break
            count += 1
            if count > max_members:
                raise PackageError(f"archive has more than {max_members} members")
            clean = _check_member(member, names)
            if clean is None:
                continue
            total += max(member.size, 0)
            if total > max_bytes:
                raise PackageError(f"archive unpacks to more than {max_bytes} bytes")
            names.add(clean)
            member.name = clean
            if member.islnk():
                member.linkname = _check_name(member.linkname)
            checked.append(member)
        for member in checked:
            try:
                tar.extract(member, dest, filter="data")
            except tarfile.FilterError as exc:
                raise PackageError(f"unsafe archive member {member.name!r}: {exc}") from exc
            except (tarfile.TarError, OSError) as exc:
                raise PackageError(f"cannot extract {member.name!r}: {exc}") from exc
    return sorted(m.name for m in checked if not m.isdir())


def archive_bytes(root: Path) -> bytes:
    """The package of ``root`` in memory (tests and small projects)."""
    buf = io.BytesIO()
    make_archive(root, buf)
    return buf.getvalue()
