"""The Python packages of a model: requirements files, local wheels, the PyTorch index.

The requirements a model names are rewritten into one self-contained list for uv: ``-r``
includes are inlined, local files (wheels, sdists, ``--find-links`` folders,
constraints) get absolute paths and their contents go into the environment's key, and
the ``cog``/``coglet`` packages are dropped because Vendo provides ``cog`` itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from vendo.envs.config import CONFIG_FILE, CogConfig
from vendo.errors import ConfigError

__all__ = [
    "COG_DEPENDENCIES",
    "Requirements",
    "choose_torch_backend",
    "collect_requirements",
    "hash_path",
    "host_index_options",
    "local_cpu_torch_wheels",
]

PROVIDED = frozenset({"cog", "coglet"})
# What Cog's own Python package depends on (its install_requires): a Cog image has these
# installed, so public predict.py files import requests, yaml or pydantic without
# declaring them. Lower bounds only, no upper caps: whatever the model's own packages
# need resolves together with them, and a model that names one of them itself (a pin,
# a range) gets only its own line for it.
COG_DEPENDENCIES = (
    "attrs>=20.1",
    "fastapi>=0.100",
    "pydantic>=1.9",
    "PyYAML",
    "requests>=2",
    "structlog>=20",
    "typing_extensions>=4.4.0",
    "uvicorn[standard]>=0.12",
)
TORCH_PACKAGES = frozenset({"torch", "torchvision", "torchaudio"})
# CUDA versions that have a PyTorch wheel index (uv's --torch-backend values).
TORCH_CUDA = frozenset({"11.8", "12.1", "12.2", "12.4", "12.5", "12.6", "12.8", "12.9", "13.0"})
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
_INCLUDE = {"-r": "-r", "--requirement": "-r"}
_LOCAL_OPTS = {"-c": "-c", "--constraint": "-c", "-f": "-f", "--find-links": "-f"}
_EDITABLE = {"-e", "--editable"}
_ARCHIVE = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz")


@dataclass
class Requirements:
    lines: list[str] = field(default_factory=list)  # what uv installs, paths absolute
    digests: list[str] = field(default_factory=list)  # contents of local files
    warnings: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)  # normalised distribution names

    @property
    def mentions_torch(self) -> bool:
        return bool(self.names & TORCH_PACKAGES)

    @property
    def chooses_index(self) -> bool:
        return any(
            line.startswith(("--index-url", "-i ", "--extra-index-url")) for line in self.lines
        )


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def hash_path(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for item in files:
        if item.parts and any(part in (".git", "__pycache__") for part in item.parts):
            continue
        digest.update(str(item.relative_to(path) if item != path else item.name).encode())
        with item.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _logical_lines(text: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        line = raw if raw.lstrip().startswith("#") else re.sub(r"(^|\s)#.*$", "", raw)
        line = line.rstrip()
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = (pending + line.lstrip()).strip()
        pending = ""
        if line and not line.startswith("#"):
            lines.append((start, line))
    if pending.strip():
        lines.append((start, pending.strip()))
    return lines


class _Collector:
    def __init__(self, config: CogConfig) -> None:
        self.project = config.project_dir
        self.out = Requirements()
        self.seen: set[Path] = set()

    def where(self, source: Path | None, number: int) -> str:
        if source is None:
            return f"{CONFIG_FILE}: build.python_packages"
        name = source.relative_to(self.project)
        return f"{CONFIG_FILE}: build.python_requirements: {name} line {number}"

    def local(self, base: Path, relative: str, where: str) -> Path:
        path = (base / relative).resolve()
        if not path.is_relative_to(self.project):
            raise ConfigError(f"{where}: {relative} points outside the project")
        if not path.exists():
            raise ConfigError(f"{where}: {relative} not found")
        self.out.digests.append(f"{path.relative_to(self.project)}={hash_path(path)}")
        return path

    def file(self, path: Path, where: str) -> None:
        if path in self.seen:
            return
        self.seen.add(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: cannot read {path.name}: {exc}") from exc
        for number, line in _logical_lines(text):
            self.line(line, path.parent, self.where(path, number), path)

    def line(self, line: str, base: Path, where: str, source: Path | None) -> None:
        parts = shlex.split(line, posix=True) if line.startswith("-") else [line]
        option = parts[0]
        value = " ".join(parts[1:])
        if option.startswith("--") and "=" in option:
            option, value = option.split("=", 1)
        elif option in ("-r", "-c", "-f", "-e", "-i") or not option.startswith("-"):
            pass
        elif option[:2] in ("-r", "-c", "-f", "-e", "-i"):
            option, value = option[:2], option[2:]
        if option in _INCLUDE:
            self.file(self.local(base, value, where), where)
            return
        if option in _LOCAL_OPTS:
            flag = _LOCAL_OPTS[option]
            if flag == "-f" and "://" in value:
                self.out.lines.append(f"-f {value}")
            else:
                self.out.lines.append(f"{flag} {self.local(base, value, where)}")
            return
        if option in _EDITABLE:
            if "://" in value or value.startswith("git+"):
                self.out.lines.append(f"-e {value}")
            else:
                self.out.lines.append(f"-e {self.local(base, value, where)}")
            return
        if option.startswith("-"):
            self.out.lines.append(line)  # index options and the like, passed through
            return
        self.requirement(line, base, where)

    def requirement(self, line: str, base: Path, where: str) -> None:
        first = line.split(";")[0].strip()
        if first.startswith(("./", "../", "/")) or (
            first.endswith(_ARCHIVE) and "://" not in first and (base / first).exists()
        ):
            path = self.local(base, first, where)
            rest = line[len(first) :]
            self.out.lines.append(f"{path}{rest}")
            return
        match = _NAME.match(line)
        if match and "://" not in line.split("@")[0]:
            name = normalise(match.group(1))
            if name in PROVIDED:
                self.out.warnings.append(
                    f"{where}: {match.group(1)} dropped; Vendo provides the cog package itself"
                )
                return
            self.out.names.add(name)
        self.out.lines.append(line)


def collect_requirements(config: CogConfig, *, cog_dependencies: bool = True) -> Requirements:
    """The packages to install, with local files hashed and ``cog`` lines dropped.

    ``cog_dependencies``: add :data:`COG_DEPENDENCIES` the model does not name itself.
    """
    collector = _Collector(config)
    path = config.requirements_path
    if path is not None:
        collector.file(path.resolve(), f"{CONFIG_FILE}: build.python_requirements")
    for package in config.build.python_packages:
        collector.line(package, config.project_dir, collector.where(None, 0), None)
    out = collector.out
    if cog_dependencies:
        for line in COG_DEPENDENCIES:
            name = normalise(_NAME.match(line).group(1))  # type: ignore[union-attr]
            if name not in out.names:
                out.lines.append(line)
    return out


# pip's settings from the environment, passed on to uv (which reads only its own) when
# the uv variable is not set: hosts often point pip at a mirror or a wheel folder.
_PIP_TO_UV = (
    ("PIP_INDEX_URL", "UV_INDEX_URL", "--index-url"),
    ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL", "--extra-index-url"),
    ("PIP_FIND_LINKS", "UV_FIND_LINKS", "--find-links"),
)


def host_index_options(environ: dict[str, str] | None = None) -> list[str]:
    """uv options for pip's index settings found in the environment."""
    env = os.environ if environ is None else environ
    options: list[str] = []
    for pip_name, uv_name, flag in _PIP_TO_UV:
        if env.get(uv_name) or not env.get(pip_name):
            continue
        values = env[pip_name].split()
        if flag == "--index-url":
            values = values[:1]
        for value in values:
            options += [flag, value]
    return options


def _find_links_dirs(
    requirements: Requirements, options: list[str], environ: dict[str, str]
) -> list[Path]:
    places = [line[3:] for line in requirements.lines if line.startswith("-f ")]
    places += [options[i + 1] for i, flag in enumerate(options[:-1]) if flag == "--find-links"]
    places += environ.get("UV_FIND_LINKS", "").replace(",", " ").split()
    dirs = []
    for place in places:
        path = Path(place.removeprefix("file://"))
        if "://" not in place.removeprefix("file://") and path.is_dir():
            dirs.append(path)
    return dirs


def local_cpu_torch_wheels(
    requirements: Requirements, options: list[str], environ: dict[str, str] | None = None
) -> list[Path]:
    """CPU builds of torch (``torch-X+cpu-*.whl``) in local find-links folders."""
    env = dict(os.environ if environ is None else environ)
    wheels: list[Path] = []
    for folder in _find_links_dirs(requirements, options, env):
        wheels += sorted(folder.glob("torch-*+cpu-*.whl"))
    return wheels


def _pins_one_of(requirements: Requirements, versions: list[str]) -> bool:
    plain = {v.split("+")[0] for v in versions} | set(versions)
    for line in requirements.lines:
        match = re.match(r"^torch\s*===?\s*([^\s;,]+)\s*(;.*)?$", line, re.IGNORECASE)
        if match and match.group(1) in plain:
            return True
    return False


def _driver_cuda() -> str | None:
    """The newest CUDA version the host's NVIDIA driver supports, or None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"CUDA Version:\s*([\d.]+)", out.stdout)
    return match.group(1) if out.returncode == 0 and match else None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def choose_torch_backend(
    config: CogConfig,
    requirements: Requirements,
    driver_cuda: str | None = "detect",
    cpu_wheels: list[Path] | None = None,
) -> tuple[str | None, list[str]]:
    """uv's ``--torch-backend`` for this model (None: leave PyTorch to the indexes named).

    No GPU asked for, or no NVIDIA driver on this host: the CPU wheels (PyPI's Linux
    torch wheels bundle several GB of CUDA libraries a CPU host never uses), from
    PyTorch's CPU index, or from a local find-links folder that holds ``+cpu`` wheels
    (hosts that cannot reach PyTorch's index). GPU asked for: the wheel for
    ``build.cuda`` when the driver can run it, else the newest the driver supports
    (uv's ``auto``).
    """
    if not requirements.mentions_torch or requirements.chooses_index:
        return None, []
    driver = _driver_cuda() if driver_cuda == "detect" else driver_cuda
    warnings: list[str] = []
    if not config.build.gpu or driver is None:
        if config.build.gpu:
            warnings.append(
                "build.gpu is true but this host has no NVIDIA driver; installing the CPU "
                "build of PyTorch"
            )
        if cpu_wheels:
            versions = sorted({w.name.split("-")[1] for w in cpu_wheels})
            if not _pins_one_of(requirements, versions):
                warnings.append(
                    f"PyTorch CPU wheels come from {cpu_wheels[0].parent} "
                    f"({', '.join(versions)}); pin torch to one of these versions, or the "
                    "newest torch on PyPI (a CUDA build) is installed instead"
                )
            return None, warnings
        return "cpu", warnings
    cuda = config.build.cuda
    if cuda is None:
        return "auto", warnings
    wanted = ".".join(cuda.split(".")[:2])
    if _version(wanted) > _version(driver):
        warnings.append(
            f"build.cuda: {cuda} is newer than this host's driver supports ({driver}); "
            "installing the PyTorch build for the driver instead"
        )
        return "auto", warnings
    if wanted not in TORCH_CUDA:
        warnings.append(f"build.cuda: PyTorch has no wheels for CUDA {cuda}; using auto")
        return "auto", warnings
    return "cu" + wanted.replace(".", ""), warnings
