"""``build_project``: cog.yaml to a ready environment and an OpenAPI schema.

Steps: read cog.yaml, pick the interpreter, check system packages, compute the
environment's key, then (only if no environment has that key yet) create a relocatable
venv with uv in a temporary folder, run ``pre_install``, install the packages, add
Vendo's runtime, run ``build.run``, write the marker and rename the folder into place.
Finally the schema is extracted inside the environment (``python -m vendo.runner
openapi``) unless this exact project was already extracted there.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from vendo.envs.config import CogConfig, load_config
from vendo.envs.python import Interpreter, find_python
from vendo.envs.records import BuildRecord, RecordStore, write_json_atomic
from vendo.envs.requirements import (
    Requirements,
    choose_torch_backend,
    collect_requirements,
    host_index_options,
    local_cpu_torch_wheels,
)
from vendo.envs.runtime import RUNTIME_DIR, link_runtime, runtime_hash
from vendo.envs.store import EnvStore
from vendo.envs.system import check_system_packages
from vendo.errors import BuildError

if TYPE_CHECKING:
    from vendo.config import Settings

__all__ = ["BuildResult", "build_project", "child_environment", "env_key", "project_hash"]

# Bump when the layout of an environment changes, so old ones are not reused.
ENV_FORMAT = 1
_SKIP_DIRS = {
    ".git",
    ".hg",
    ".vendo",
    ".cog",
    ".venv",
    "venv",
    "__pycache__",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
}
_HASH_CONTENT_LIMIT = 8 * 1024 * 1024
_TAIL_LINES = 40

Log = Callable[[str], None]


@dataclass
class BuildResult:
    """What a runner needs to start the model, and what the build found."""

    project_dir: Path
    config: CogConfig
    env_key: str
    env_dir: Path
    python: Path  # the environment's interpreter
    runtime_path: Path  # PYTHONPATH entry that holds Vendo's runtime
    env: dict[str, str]  # variables to set for the child (over the parent's environment)
    openapi: dict[str, Any]
    openapi_path: Path
    log_path: Path
    warnings: list[str] = field(default_factory=list)
    reused: bool = False  # the environment existed already
    seconds: float = 0.0


class _BuildLog:
    """Lines go to ``on_log`` at once and to build.log once its folder is known."""

    def __init__(self, on_log: Log | None) -> None:
        self.on_log = on_log
        self.buffer: list[str] = []
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.handle: IO[str] | None = None
        self.path: Path | None = None

    def __call__(self, line: str) -> None:
        self.tail.append(line)
        if self.handle is not None:
            self.handle.write(line + "\n")
            self.handle.flush()
        else:
            self.buffer.append(line)
        if self.on_log is not None:
            self.on_log(line)

    def open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Appended, not replaced: a reuse must not wipe the log of the build it reuses.
        self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        self.handle.write(f"=== vendo build, {stamp} ===\n")
        for line in self.buffer:
            self.handle.write(line + "\n")
        self.buffer = []

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def tail_text(self) -> str:
        return "\n".join(self.tail)


_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., int] | None:
    # Looked up in the parent: a preexec_fn must not import (another thread may hold
    # the import lock at fork time).
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        prctl: Callable[..., int] = ctypes.CDLL("libc.so.6", use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec_fn: a SIGKILLed build must not leave uv writing into its folder."""
    prctl = _prctl()
    if prctl is None:
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return hook


def _run(cmd: list[str], log: Log, *, what: str, env: dict[str, str], cwd: Path) -> None:
    log("$ " + shlex.join(cmd))
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            text=True,
            errors="replace",
            preexec_fn=_die_with_parent_hook(),
        )
    except OSError as exc:
        raise BuildError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    with proc:  # closes the pipe (a ResourceWarning otherwise) and waits
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            log(line)
    code = proc.returncode
    if code != 0:
        raise BuildError(f"{what} failed (exit status {code}): {shlex.join(cmd)}", "\n".join(tail))


def _uv_env(uv_cache_dir: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    if uv_cache_dir is not None:
        env["UV_CACHE_DIR"] = str(uv_cache_dir)
    return env


def _shell_env(env_dir: Path, base: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    env["VIRTUAL_ENV"] = str(env_dir)
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{base.get('PATH', '')}"
    env.pop("PYTHONHOME", None)
    return env


def child_environment(result: BuildResult, base: dict[str, str] | None = None) -> dict[str, str]:
    """The full environment for a runner child: ``base`` (default os.environ) + result.env."""
    merged = dict(os.environ if base is None else base)
    for name in ("PYTHONHOME", "PYTHONSTARTUP"):
        merged.pop(name, None)
    merged.update(result.env)
    merged["PATH"] = f"{result.env_dir / 'bin'}{os.pathsep}{merged.get('PATH', '')}"
    return merged


def project_hash(project: Path, skip: tuple[Path, ...] = ()) -> str:
    """Hash of the project's files: contents, or size and mtime for very large files."""
    digest = hashlib.sha256()
    skip_set = {p.resolve() for p in skip}
    for root, dirs, files in os.walk(project):
        here = Path(root)
        dirs[:] = sorted(
            d for d in dirs if d not in _SKIP_DIRS and (here / d).resolve() not in skip_set
        )
        for name in sorted(files):
            path = here / name
            try:
                stat = path.stat()
            except OSError:
                continue
            digest.update(str(path.relative_to(project)).encode() + b"\0")
            if stat.st_size > _HASH_CONTENT_LIMIT:
                digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
                continue
            with contextlib.suppress(OSError):
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def env_key(definition: dict[str, Any]) -> str:
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _definition(
    config: CogConfig,
    interpreter: Interpreter,
    requirements: Requirements,
    torch_backend: str | None,
    index_options: list[str],
) -> dict[str, Any]:
    # Paths inside the project are written relative to it, so two projects with the
    # same wheels share one environment.
    prefix = str(config.project_dir)
    lines = [line.replace(prefix, "<project>") for line in requirements.lines]
    return {
        "format": ENV_FORMAT,
        "python": interpreter.version_text,
        "python_path": str(interpreter.path),
        "requirements": lines,
        "local_files": sorted(requirements.digests),
        "torch_backend": torch_backend,
        "host_index_options": index_options,
        "uv_torch_backend_env": os.environ.get("UV_TORCH_BACKEND"),
        "system_packages": sorted(config.build.system_packages),
        "pre_install": list(config.build.pre_install),
        "run": [step.command for step in config.build.run],
        "runtime": runtime_hash(),
    }


def _site_packages(env_dir: Path, interpreter: Interpreter) -> Path:
    major, minor = interpreter.minor
    return env_dir / "lib" / f"python{major}.{minor}" / "site-packages"


@dataclass
class _Plan:
    """What the build decided before touching the environment store: the inputs of the
    environment's key and of every install step."""

    config: CogConfig
    interpreter: Interpreter
    requirements: Requirements
    torch_backend: str | None
    index_options: list[str]
    uv: str
    warnings: list[str]


def _make_env(temp: Path, plan: _Plan, uv_env: dict[str, str], log: Log, step: Log) -> None:
    _create_venv(temp, plan, uv_env, log, step)
    shell_env = _shell_env(temp, uv_env)
    build = plan.config.build
    with tempfile.TemporaryDirectory(prefix="vendo-build-") as scratch_dir:
        # Build commands run without the project's source, as Cog's do.
        scratch = Path(scratch_dir)
        _run_shell_steps("build.pre_install", build.pre_install, shell_env, scratch, log, step)
        if plan.requirements.lines:
            _install_packages(temp, plan, uv_env, log, step)
        step("Adding Vendo's runtime")
        link_runtime(temp, _site_packages(temp, plan.interpreter))
        commands = [run_step.command for run_step in build.run]
        _run_shell_steps("build.run", commands, shell_env, scratch, log, step)


def _create_venv(temp: Path, plan: _Plan, uv_env: dict[str, str], log: Log, step: Log) -> None:
    step(f"Creating a Python {plan.interpreter.version_text} environment")
    _run(
        [
            plan.uv,
            "venv",
            "--relocatable",
            "--seed",
            "--no-project",
            "--python",
            str(plan.interpreter.path),
            *plan.index_options,  # seeding pip reads the indexes too
            str(temp),
        ],
        log,
        what="creating the environment",
        env=uv_env,
        cwd=temp.parent,
    )


def _install_packages(temp: Path, plan: _Plan, uv_env: dict[str, str], log: Log, step: Log) -> None:
    step("Installing Python packages")
    req_file = temp / "vendo-requirements.txt"
    req_file.write_text("\n".join(plan.requirements.lines) + "\n", encoding="utf-8")
    cmd = [plan.uv, "pip", "install", "--python", str(temp / "bin" / "python"), "-r", str(req_file)]
    cmd += plan.index_options
    if plan.torch_backend is not None:
        cmd += ["--torch-backend", plan.torch_backend]
    _run(cmd, log, what="installing Python packages", env=uv_env, cwd=temp.parent)


def _run_shell_steps(
    label: str, commands: Sequence[str], env: dict[str, str], cwd: Path, log: Log, step: Log
) -> None:
    """Runs cog.yaml's shell commands in order; ``label[i]`` names the one that failed."""
    for i, command in enumerate(commands):
        step(f"{label}[{i}]")
        _run(["bash", "-c", command], log, what=f"{label}[{i}]", env=env, cwd=cwd)


def _extract_schema(
    config: CogConfig, env_dir: Path, env: dict[str, str], log: Log, warnings: list[str]
) -> dict[str, Any]:
    cmd = [str(env_dir / "bin" / "python"), "-m", "vendo.runner", "openapi"]
    cmd += ["--project", str(config.project_dir)]
    if config.predict:
        cmd += ["--ref", config.predict]
    if config.train:
        cmd += ["--train-ref", config.train]
    log("$ " + shlex.join(cmd))
    child_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV")}
    child_env.update(env)
    child_env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    try:
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            errors="replace",
            env=child_env,
            cwd=config.project_dir,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildError("schema extraction timed out after 900 s") from exc
    for line in out.stderr.splitlines():
        log(line)
        if out.returncode == 0 and line.startswith("warning: "):
            warnings.append(line.removeprefix("warning: "))
    ref = config.predict or config.train
    if out.returncode != 0:
        lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1].removeprefix("error: ") if lines else f"exit {out.returncode}"
        raise BuildError(f"{ref} could not be loaded: {reason}", out.stderr[-4000:])
    try:
        document = json.loads(out.stdout)
    except ValueError as exc:
        raise BuildError(f"{ref}: schema extraction printed something other than JSON") from exc
    if not isinstance(document, dict):
        raise BuildError(f"{ref}: schema extraction printed a {type(document).__name__}")
    return document


def build_project(
    project_dir: str | Path,
    settings: Settings | None = None,
    *,
    on_log: Log | None = None,
    on_step: Log | None = None,
    uv_cache_dir: Path | None = None,
) -> BuildResult:
    """Build (or reuse) the environment for ``project_dir`` and extract its schema.

    ``on_log`` gets every log line (also saved to ``result.log_path``); ``on_step`` a
    short description of each step. Raises ConfigError for a bad cog.yaml and
    BuildError (with ``log_tail``, and ``log_path`` as an attribute) when a step fails.
    """
    started = time.monotonic()
    if settings is None:
        from vendo.config import Settings

        settings = Settings()  # type: ignore[call-arg]  # every field has a default
    log = _BuildLog(on_log)

    def step(text: str) -> None:
        log(f"==> {text}")
        if on_step is not None:
            on_step(text)

    try:
        return _build(project_dir, settings, log, step, uv_cache_dir, started)
    except BuildError as exc:
        if not exc.log_tail:
            exc.log_tail = log.tail_text()
        if log.path is not None:
            log(f"build failed: {exc.detail}")
            setattr(exc, "log_path", log.path)  # noqa: B010 - BuildError has no such field
        raise
    finally:
        log.close()


def _build(
    project_dir: str | Path,
    settings: Settings,
    log: _BuildLog,
    step: Log,
    uv_cache_dir: Path | None,
    started: float,
) -> BuildResult:
    data_dir = Path(settings.data_dir).resolve()
    project = Path(project_dir).resolve()
    plan = _plan(project, settings, log, step)
    warnings = plan.warnings
    definition = _definition(
        plan.config, plan.interpreter, plan.requirements, plan.torch_backend, plan.index_options
    )
    key = env_key(definition)
    records = RecordStore(data_dir)
    content_hash = project_hash(project, skip=(data_dir,))
    record_dir = records.dir_for(key, content_hash)
    log.open(record_dir / "build.log")
    for warning in warnings:
        log(f"warning: {warning}")

    store = EnvStore(data_dir)
    reused = _ensure_env(store, key, plan, definition, uv_cache_dir, log, step)
    store.touch(key)
    env_dir = store.path(key)
    runtime = env_dir / RUNTIME_DIR
    env = _model_env(env_dir, plan.config)
    openapi = _schema(records, record_dir, plan.config, env_dir, env, log, step, warnings)
    records.save(
        record_dir,
        BuildRecord(
            project_dir=str(project),
            env_key=key,
            project_hash=content_hash,
            built_at=time.time(),
            openapi_file="openapi.json",
            warnings=warnings,
        ),
    )
    seconds = time.monotonic() - started
    log(f"Built in {seconds:.2f} s")
    return BuildResult(
        project_dir=project,
        config=plan.config,
        env_key=key,
        env_dir=env_dir,
        python=env_dir / "bin" / "python",
        runtime_path=runtime,
        env=env,
        openapi=openapi,
        openapi_path=record_dir / "openapi.json",
        log_path=record_dir / "build.log",
        warnings=warnings,
        reused=reused,
        seconds=seconds,
    )


def _model_env(env_dir: Path, config: CogConfig) -> dict[str, str]:
    """Variables the model's process runs with: the environment, Vendo's runtime on the
    path, no user site-packages, unbuffered output, then cog.yaml's own."""
    return {
        "VIRTUAL_ENV": str(env_dir),
        "PYTHONPATH": str(env_dir / RUNTIME_DIR),
        "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1",
        **config.environment,
    }


def _plan(project: Path, settings: Settings, log: _BuildLog, step: Log) -> _Plan:
    """Reads cog.yaml and settles everything the environment's key depends on: the
    interpreter, the package lines, the PyTorch wheels and the package indexes."""
    import uv as uv_package

    step("Reading cog.yaml")
    config = load_config(project)
    warnings = list(config.warnings)
    uv = uv_package.find_uv_bin()

    step("Finding Python")
    interpreter, found = find_python(
        config.build.python_version,
        uv=uv,
        allow_nearest=settings.allow_nearest_python,
        log=log,
    )
    warnings += found
    log(f"Python {interpreter.version_text} at {interpreter.path}")
    requirements = collect_requirements(config, cog_dependencies=settings.cog_dependencies)
    warnings += requirements.warnings
    index_options = host_index_options()
    torch_backend, found = choose_torch_backend(
        config, requirements, cpu_wheels=local_cpu_torch_wheels(requirements, index_options)
    )
    warnings += found
    if torch_backend is not None:
        log(f"PyTorch wheels: --torch-backend {torch_backend}")

    if config.build.system_packages:
        step("Checking system packages")
        system = check_system_packages(
            config.build.system_packages,
            install=settings.install_system_packages,
            strict=settings.strict_system_packages,
            log=log,
        )
        warnings += system.warnings
    return _Plan(config, interpreter, requirements, torch_backend, index_options, uv, warnings)


def _ensure_env(
    store: EnvStore,
    key: str,
    plan: _Plan,
    definition: dict[str, Any],
    uv_cache_dir: Path | None,
    log: Log,
    step: Log,
) -> bool:
    """Makes the environment ``key`` unless it exists; True when an existing one is reused."""
    if store.is_ready(key):
        log(f"Reusing environment {key}")
        return True
    uv_env = _uv_env(uv_cache_dir)
    with store.lock(key):
        if store.is_ready(key):
            return True  # another build finished it while this one waited
        temp = store.new_temp(key)
        building = time.monotonic()
        try:
            _make_env(temp, plan, uv_env, log, step)
            info = {
                "python": plan.interpreter.version_text,
                "definition": definition,
                "build_seconds": round(time.monotonic() - building, 3),
            }
            store.commit(key, temp, info)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
    return False


def _schema(
    records: RecordStore,
    record_dir: Path,
    config: CogConfig,
    env_dir: Path,
    env: dict[str, str],
    log: Log,
    step: Log,
    warnings: list[str],
) -> dict[str, Any]:
    """The OpenAPI schema, extracted once per (environment, project content)."""
    openapi_path = record_dir / "openapi.json"
    record = records.load(record_dir)
    if record is not None and record.openapi_file and openapi_path.is_file():
        # The model's own warnings came from the extraction that made this record.
        warnings += [w for w in record.warnings if w not in warnings]
        openapi: dict[str, Any] = json.loads(openapi_path.read_text(encoding="utf-8"))
        return openapi
    step("Extracting the OpenAPI schema")
    openapi = _extract_schema(config, env_dir, env, log, warnings)
    write_json_atomic(openapi_path, openapi)
    return openapi
