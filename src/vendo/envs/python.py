"""Finding the Python interpreter a model asks for (``build.python_version``).

Order: pyenv-style version folders (``$PYENV_ROOT/versions/*``), then ``python3.X`` on
PATH, then what ``uv python find`` sees (its managed installs included), then uv's
managed download. pyenv *shims* are skipped: they only work for the globally selected
version. Each candidate is run once to learn its real version, so a broken or
mislabelled one is never used.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vendo.errors import ConfigError

__all__ = ["Interpreter", "find_python", "installed_pythons"]

MIN_MINOR = 8  # build.config.MIN_PYTHON
MAX_MINOR = 14
_PROBE = "import json,sys;print(json.dumps([list(sys.version_info[:3]),sys.implementation.name]))"
_NAME = re.compile(r"^python3\.(\d+)$")


@dataclass(frozen=True)
class Interpreter:
    path: Path
    version: tuple[int, int, int]

    @property
    def minor(self) -> tuple[int, int]:
        return self.version[0], self.version[1]

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)


def _pyenv_roots() -> list[Path]:
    roots = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(Path(os.environ["PYENV_ROOT"]))
    roots.append(Path.home() / ".pyenv")
    return roots


def _version_sort_key(folder: Path) -> tuple[int, ...]:
    parts = re.findall(r"\d+", folder.name)
    return tuple(int(p) for p in parts)


def _candidates(minor: int) -> Iterator[Path]:
    """Paths that may be a CPython 3.<minor>, best first; not yet verified."""
    name = f"python3.{minor}"
    for root in _pyenv_roots():
        versions = root / "versions"
        if not versions.is_dir():
            continue
        folders = [f for f in versions.iterdir() if f.name.startswith(f"3.{minor}.")]
        for folder in sorted(folders, key=_version_sort_key, reverse=True):
            yield folder / "bin" / name
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry or Path(entry).name == "shims":
            continue
        yield Path(entry) / name


def _probe(path: Path) -> Interpreter | None:
    if not (path.is_file() and os.access(path, os.X_OK)):
        return None
    try:
        out = subprocess.run(
            [str(path), "-I", "-c", _PROBE], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        version, implementation = json.loads(out.stdout)
    except ValueError:
        return None
    if implementation != "cpython":
        return None
    return Interpreter(path=path, version=(version[0], version[1], version[2]))


def _uv_find(uv: str, minor: int) -> Path | None:
    env = {**os.environ, "PATH": _path_without_shims()}
    try:
        out = subprocess.run(
            [uv, "python", "find", "--no-project", f"3.{minor}"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = out.stdout.strip()
    return Path(text) if out.returncode == 0 and text else None


def _uv_install(uv: str, minor: int, log: Callable[[str], None]) -> bool:
    log(f"Python 3.{minor} is not installed; asking uv to download it")
    try:
        out = subprocess.run(
            [uv, "python", "install", f"3.{minor}"],
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(f"uv python install 3.{minor} failed: {exc}")
        return False
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        log(f"uv python install 3.{minor} failed: {' / '.join(tail)}")
        return False
    return True


def _path_without_shims() -> str:
    entries = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(e for e in entries if e and Path(e).name != "shims")


def _find_minor(minor: int, uv: str | None) -> Interpreter | None:
    for path in _candidates(minor):
        found = _probe(path)
        if found is not None and found.minor == (3, minor):
            return found
    if uv is not None:
        uv_path = _uv_find(uv, minor)
        found = _probe(uv_path) if uv_path is not None else None
        if found is not None and found.minor == (3, minor):
            return found
    return None


def _minors() -> range:
    return range(MAX_MINOR, MIN_MINOR - 1, -1)


def installed_pythons(uv: str | None = None) -> list[Interpreter]:
    """One interpreter per installed minor version (3.8 and later), newest first."""
    found = []
    for minor in _minors():
        interpreter = _find_minor(minor, uv)
        if interpreter is not None:
            found.append(interpreter)
    return found


def find_python(
    requested: str | None,
    *,
    uv: str | None,
    allow_nearest: bool = False,
    download: bool = True,
    log: Callable[[str], None] = lambda line: None,
) -> tuple[Interpreter, list[str]]:
    """The interpreter for ``requested`` (``"3.11"``, ``"3.11.4"`` or None) and warnings.

    A patch level in ``requested`` is a preference, not a requirement: any 3.11 serves a
    model that asked for 3.11.4 (Cog's images also track the newest patch).
    """
    if requested is None:
        return _newest_python(uv, log), []
    minor = int(requested.split(".")[1])
    found = _find_minor(minor, uv)
    if found is None and download and uv is not None and _uv_install(uv, minor, log):
        found = _find_minor(minor, uv)
    if found is not None:
        wanted = tuple(int(p) for p in requested.split("."))
        if len(wanted) == 3 and wanted != found.version:
            return found, [f"build.python_version asks for {requested}; using {found.version_text}"]
        return found, []
    return _nearest_python(requested, minor, uv, allow_nearest)


def _newest_python(uv: str | None, log: Callable[[str], None]) -> Interpreter:
    """For a cog.yaml without build.python_version: the newest installed interpreter."""
    # Newest first, and uv only when nothing on disk answers: this runs on every
    # rebuild of a model without the key.
    pythons = [p for p in (_find_minor(m, None) for m in _minors()) if p is not None][:1]
    pythons = pythons or installed_pythons(uv)[:1]
    if not pythons:
        raise ConfigError(
            "cog.yaml: build.python_version: missing, and no Python 3.8 or later is installed"
        )
    # cog.yaml's loader already warned that the key is missing.
    log(
        f"build.python_version is not set; using the newest installed Python, "
        f"{pythons[0].version_text}"
    )
    return pythons[0]


def _nearest_python(
    requested: str, minor: int, uv: str | None, allow_nearest: bool
) -> tuple[Interpreter, list[str]]:
    """When the requested minor version is missing: the nearest installed one if the
    settings allow it, else an error that names it and how to get the requested one."""
    pythons = installed_pythons(uv)
    available = ", ".join(p.version_text for p in pythons) or "none"
    # Ties go to the newer one: a model written for 3.9 more likely runs on 3.10 than 3.8.
    nearest = min(pythons, key=lambda p: (abs(p.minor[1] - minor), -p.minor[1]), default=None)
    if allow_nearest and nearest is not None:
        return nearest, [
            f"Python {requested} is not available; using the nearest installed, "
            f"{nearest.version_text} (VENDO_ALLOW_NEAREST_PYTHON is set)"
        ]
    # uv downloads interpreters only with internet access, hence "could not be".
    advice = (
        f"the nearest available is {nearest.version_text}: set VENDO_ALLOW_NEAREST_PYTHON=1 "
        "to build with it, "
        if nearest is not None
        else ""
    )
    raise ConfigError(
        f"cog.yaml: build.python_version: Python {requested} is not installed and could "
        f"not be downloaded; {advice}install Python {requested} (pyenv, or `uv python "
        f"install {requested}` with internet access), or change build.python_version. "
        f"Installed: {available}."
    )
