"""A wheel of the running Vendo, for ``vendo build --dockerfile``.

The image must install the same Vendo that wrote its Dockerfile, and that release is
not necessarily on PyPI (a source checkout, an unreleased version). So the wheel is
packed from the installation itself: the ``vendo`` package folder (sources and data
files, no bytecode) plus the installed distribution's metadata and entry points. This
works for an editable install too, and needs no build backend or network.

The zip entries get a fixed timestamp, so the same installation always packs the same
bytes and Docker's layer cache survives regenerating the Dockerfile.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import zipfile
from pathlib import Path

import vendo

__all__ = ["build_wheel", "wheel_name"]

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


def _metadata() -> tuple[str, str, str]:
    """``(version, METADATA text, entry_points.txt text)`` of the running installation."""
    try:
        dist = importlib.metadata.distribution("vendo")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    version = dist.version if dist is not None else vendo.__version__
    metadata = dist.read_text("METADATA") if dist is not None else None
    if not metadata:
        metadata = f"Metadata-Version: 2.1\nName: vendo\nVersion: {version}\n"
    entry_points = dist.read_text("entry_points.txt") if dist is not None else None
    if not entry_points:
        entry_points = "[console_scripts]\nvendo = vendo.cli:main\n"
    return version, metadata, entry_points


def wheel_name() -> str:
    return f"vendo-{_metadata()[0]}-py3-none-any.whl"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(out_dir: Path) -> Path:
    """Write ``vendo-<version>-py3-none-any.whl`` into ``out_dir`` and return its path."""
    version, metadata, entry_points = _metadata()
    package = Path(vendo.__file__).resolve().parent
    files: list[tuple[str, bytes]] = []
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package)
        if not path.is_file() or _SKIP_DIRS & set(relative.parts):
            continue
        if path.suffix in _SKIP_SUFFIXES:
            continue
        files.append((f"vendo/{relative.as_posix()}", path.read_bytes()))
    info = f"vendo-{version}.dist-info"
    wheel_meta = "Wheel-Version: 1.0\nGenerator: vendo\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files += [
        (f"{info}/METADATA", metadata.encode()),
        (f"{info}/WHEEL", wheel_meta.encode()),
        (f"{info}/entry_points.txt", entry_points.encode()),
    ]
    record = [_record_line(name, data) for name, data in files] + [f"{info}/RECORD,,"]
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"vendo-{version}-py3-none-any.whl"
    temp = target.with_name(target.name + ".tmp")
    with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            entry = zipfile.ZipInfo(name, date_time=_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data)
    temp.replace(target)
    return target
