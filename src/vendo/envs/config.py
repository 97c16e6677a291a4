"""cog.yaml: read, validate and turn into a typed :class:`CogConfig`.

Every key of Cog's cog.yaml is either honoured, ignored (with a warning where Cog users
would expect an effect), or rejected with a :class:`~vendo.errors.ConfigError` whose
message starts with the file and the field: ``cog.yaml: build.python_version: ...``.
The table of what happens to each key is in docs/build.md (and spec/cog.md section 6).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from vendo.errors import ConfigError

__all__ = [
    "DENIED_ENV_NAMES",
    "DENIED_ENV_PREFIXES",
    "CONFIG_FILE",
    "BuildConfig",
    "CogConfig",
    "RunStep",
    "load_config",
    "parse_config",
]

CONFIG_FILE = "cog.yaml"

# Names the platform itself sets for the child; a model overriding them would break the
# runner (PYTHONPATH, VIRTUAL_ENV), the GPU assignment (CUDA_*, NVIDIA_*) or Replicate's
# own plumbing (R8_*, REPLICATE_*). Same list as Cog's builder refuses.
DENIED_ENV_NAMES = frozenset(
    {
        "PATH",
        "LD_LIBRARY_PATH",
        "LIBRARY_PATH",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "PYTHONUNBUFFERED",
        "HF_ENDPOINT",
        "HF_HUB_ENABLE_HF_TRANSFER",
    }
)
DENIED_ENV_PREFIXES = ("R8_", "REPLICATE_", "CUDA_", "NVIDIA_", "NV_", "PGET_", "KUBERNETES_")

# Cog builds 3.8 and 3.9 images too, and public models still ask for them; the runtime
# (sdk, schema, runner) is kept 3.8-compatible for them (tests/runner/test_py38_compat.py).
MIN_PYTHON = (3, 8)
MAX_TESTED_PYTHON = (3, 13)

_TOP_KEYS = {"build", "run", "predict", "train", "concurrency", "environment", "weights"}
_TOP_IGNORED = {"image", "model"}
_BUILD_KEYS = {
    "python_version",
    "python_requirements",
    "python_packages",
    "pre_install",
    "run",
    "system_packages",
    "gpu",
    "cuda",
    "cudnn",
}
_BUILD_IGNORED = {"sdk_version"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?$")
_REF = re.compile(r"^(?P<file>[^:]+\.py)(?::(?P<name>[A-Za-z_][A-Za-z0-9_]*))?$")


@dataclass(frozen=True)
class RunStep:
    """One ``build.run`` entry: a shell command run once at build time."""

    command: str


@dataclass(frozen=True)
class BuildConfig:
    """The ``build`` section. Paths are relative to the project directory."""

    python_version: str | None = None
    python_requirements: str | None = None
    python_packages: tuple[str, ...] = ()
    pre_install: tuple[str, ...] = ()
    run: tuple[RunStep, ...] = ()
    system_packages: tuple[str, ...] = ()
    gpu: bool = False
    cuda: str | None = None

    @property
    def python_minor(self) -> tuple[int, int] | None:
        """``(3, 11)`` for ``"3.11"`` or ``"3.11.4"``; None when the key is missing."""
        if self.python_version is None:
            return None
        major, minor = self.python_version.split(".")[:2]
        return int(major), int(minor)


@dataclass(frozen=True)
class CogConfig:
    """A validated cog.yaml.

    ``predict`` is the ``run:`` (or deprecated ``predict:``) reference such as
    ``predict.py:Predictor``, exactly as written; ``train`` likewise. ``warnings`` lists
    every key that was ignored or is deprecated, one sentence each.
    """

    project_dir: Path
    build: BuildConfig = field(default_factory=BuildConfig)
    predict: str | None = None
    train: str | None = None
    # None: cog.yaml has no concurrency.max, so @concurrent(max=...) (or 1) decides
    concurrency_max: int | None = None
    environment: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def requirements_path(self) -> Path | None:
        req = self.build.python_requirements
        return None if req is None else self.project_dir / req


class _TextFloat(float):
    """A YAML float that remembers how it was written (``3.10`` is not ``3.1``)."""

    text: str


class _Loader(yaml.SafeLoader):
    pass


def _construct_float(loader: yaml.SafeLoader, node: yaml.nodes.Node) -> float:
    assert isinstance(node, yaml.ScalarNode)
    value = _TextFloat(loader.construct_yaml_float(node))
    value.text = str(node.value)
    return value


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def load_config(project_dir: str | Path) -> CogConfig:
    """Read and validate ``project_dir/cog.yaml``; raises ConfigError naming the field."""
    project = Path(project_dir).resolve()
    path = project / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{CONFIG_FILE}: not found in {project}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{CONFIG_FILE}: cannot be read: {exc}") from exc
    return parse_config(text, project)


def parse_config(text: str, project_dir: str | Path) -> CogConfig:
    """Validate cog.yaml ``text`` for the project in ``project_dir``."""
    project = Path(project_dir).resolve()
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{CONFIG_FILE}: not valid YAML{_yaml_problem(exc)}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{CONFIG_FILE}: expected a mapping of keys, got {_kind(data)}")
    return _Parser(project).parse(data)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error as one line: where, then what (its own text spans several lines
    and quotes the file)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        return ": " + " ".join(str(exc).split())
    return f" at line {mark.line + 1}, column {mark.column + 1}: {problem}"


class _Parser:
    def __init__(self, project: Path) -> None:
        self.project = project
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(f"{CONFIG_FILE}: {message}")

    def unknown(self, prefix: str, key: Any, known: set[str]) -> None:
        """Warn about ``key`` under ``prefix``, naming the known key it most looks like."""
        message = f"{prefix}{key}: unknown key, ignored"
        close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
        if close:
            message += f" — did you mean {close[0]}?"
        self.warn(message)

    def parse(self, data: dict[Any, Any]) -> CogConfig:
        for key in data:
            if key in _TOP_IGNORED:
                continue
            if key not in _TOP_KEYS:
                self.unknown("", key, _TOP_KEYS | _TOP_IGNORED)
        if "weights" in data:
            _fail(
                "weights", "not supported (the experimental weights key); load weights in setup()"
            )
        build = self.build(data.get("build"))
        if data.get("run") is not None and data.get("predict") is not None:
            _fail("run", "set either run or predict (its deprecated name), not both")
        predict_key = "run" if data.get("run") is not None else "predict"
        predict = self.ref(predict_key, data.get(predict_key))
        train = self.ref("train", data.get("train"))
        if predict is None and train is None:
            _fail(
                "run", "no predictor: set run (or predict) to a reference like predict.py:Predictor"
            )
        return CogConfig(
            project_dir=self.project,
            build=build,
            predict=predict,
            train=train,
            concurrency_max=self.concurrency(data.get("concurrency")),
            environment=self.environment(data.get("environment")),
            warnings=self.warnings,
        )

    # --- top-level keys ----------------------------------------------------------

    def ref(self, key: str, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            _fail(key, f"expected a reference like predict.py:Predictor, got {_kind(value)}")
        match = _REF.match(value.strip())
        if match is None:
            _fail(key, f"{value!r} is not a reference like predict.py:Predictor")
        source = self.inside(key, match.group("file"))
        if not source.is_file():
            _fail(key, f"{match.group('file')} not found in the project")
        return value.strip()

    def concurrency(self, value: Any) -> int | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            _fail("concurrency", f"expected a mapping with max, got {_kind(value)}")
        for key in value:
            if key != "max":
                self.unknown("concurrency.", key, {"max"})
        cmax = value.get("max")
        if cmax is None:
            return None
        if isinstance(cmax, bool) or not isinstance(cmax, int):
            _fail("concurrency.max", f"expected an integer, got {_kind(cmax)}")
        if cmax < 1:
            _fail("concurrency.max", f"must be at least 1, got {cmax}")
        return cmax

    def environment(self, value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, list):
            _fail("environment", f"expected a list of NAME=value strings, got {_kind(value)}")
        env: dict[str, str] = {}
        for i, item in enumerate(value):
            where = f"environment[{i}]"
            if not isinstance(item, str) or "=" not in item:
                _fail(where, f"expected a NAME=value string, got {item!r}")
            name, _, val = item.partition("=")
            if not _ENV_NAME.match(name):
                _fail(where, f"{name!r} is not a valid environment variable name")
            if name in DENIED_ENV_NAMES or name.startswith(DENIED_ENV_PREFIXES):
                _fail(where, f"{name} is set by the platform and may not be overridden")
            if name in env:
                self.warn(f"{where}: {name} is set twice; the last value wins")
            env[name] = val
        return env

    # --- build -------------------------------------------------------------------

    def build(self, value: Any) -> BuildConfig:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            _fail("build", f"expected a mapping, got {_kind(value)}")
        for key in value:
            if key in _BUILD_IGNORED:
                continue
            if key not in _BUILD_KEYS:
                self.unknown("build.", key, _BUILD_KEYS | _BUILD_IGNORED)
        if value.get("cudnn") is not None:
            self.warn("build.cudnn: ignored; the PyTorch wheels bring their own cuDNN")
        requirements = self.requirements(value.get("python_requirements"))
        packages = self.str_list("build.python_packages", value.get("python_packages"))
        if packages:
            if requirements is not None:
                _fail(
                    "build.python_packages",
                    "set either python_packages or python_requirements, not both",
                )
            self.warn("build.python_packages: deprecated; use build.python_requirements")
        pre_install = self.str_list("build.pre_install", value.get("pre_install"))
        if pre_install:
            self.warn("build.pre_install: deprecated; use build.run")
        gpu = value.get("gpu", False)
        if gpu is None:
            gpu = False
        if not isinstance(gpu, bool):
            _fail("build.gpu", f"expected true or false, got {_kind(gpu)}")
        cuda = value.get("cuda")
        if cuda is not None:
            cuda = _scalar_text(cuda)
            if cuda is None or not re.match(r"^\d+(\.\d+)*$", cuda):
                _fail("build.cuda", f"expected a version like 12.1, got {value.get('cuda')!r}")
        return BuildConfig(
            python_version=self.python_version(value.get("python_version")),
            python_requirements=requirements,
            python_packages=tuple(packages),
            pre_install=tuple(pre_install),
            run=tuple(self.run_steps(value.get("run"))),
            system_packages=tuple(
                self.str_list("build.system_packages", value.get("system_packages"))
            ),
            gpu=gpu,
            cuda=cuda,
        )

    def python_version(self, value: Any) -> str | None:
        if value is None:
            self.warn(
                "build.python_version: missing; using the newest installed Python 3.8 or "
                'later (Cog requires this key: set it, e.g. "3.12")'
            )
            return None
        text = _scalar_text(value)
        match = _VERSION.match(text) if text is not None else None
        if text is None or match is None or match.group(2) is None:
            _fail("build.python_version", f'expected a version like "3.12", got {value!r}')
        version = (int(match.group(1)), int(match.group(2)))
        if version < MIN_PYTHON:
            _fail(
                "build.python_version",
                f"{text} is not supported; models run on Python 3.8 or later",
            )
        if version > MAX_TESTED_PYTHON:
            self.warn(f"build.python_version: {text} is newer than the tested 3.8 to 3.13")
        return text

    def requirements(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            _fail("build.python_requirements", f"expected a file path, got {_kind(value)}")
        path = self.inside("build.python_requirements", value)
        if not path.is_file():
            _fail("build.python_requirements", f"{value} not found in the project")
        return value

    def run_steps(self, value: Any) -> list[RunStep]:
        steps: list[RunStep] = []
        if value is None:
            return steps
        if not isinstance(value, list):
            _fail("build.run", f"expected a list of commands, got {_kind(value)}")
        for i, item in enumerate(value):
            where = f"build.run[{i}]"
            if isinstance(item, dict):
                for key in item:
                    if key not in ("command", "mounts"):
                        self.unknown(f"{where}.", key, {"command", "mounts"})
                if item.get("mounts"):
                    _fail(
                        f"{where}.mounts",
                        "secret mounts are not supported: no build secrets are configured",
                    )
                item = item.get("command")
                where += ".command"
            if not isinstance(item, str) or not item.strip():
                _fail(where, f"expected a shell command, got {_kind(item)}")
            steps.append(RunStep(command=item))
        return steps

    def str_list(self, where: str, value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            _fail(where, f"expected a list of strings, got {_kind(value)}")
        items: list[str] = []
        for i, item in enumerate(value):
            text = _scalar_text(item)
            if text is None or not text.strip():
                _fail(f"{where}[{i}]", f"expected a string, got {_kind(item)}")
            items.append(text.strip())
        return items

    def inside(self, where: str, relative: str) -> Path:
        path = (self.project / relative).resolve()
        if not path.is_relative_to(self.project):
            _fail(where, f"{relative} points outside the project")
        return path


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, _TextFloat):
        return value.text
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    return str(value)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, (int, float)):
        return f"a number ({_scalar_text(value)})"
    return type(value).__name__


def _fail(where: str, message: str) -> NoReturn:
    raise ConfigError(f"{CONFIG_FILE}: {where}: {message}")
