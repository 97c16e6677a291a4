"""Run Cog's own HTTP server (cog 0.23.1 + coglet) on a predictor project, without Docker.

A Cog 0.23.1 image starts ``python -m cog.server.http`` with the project as the
working directory. That module reads the predictor reference from
``COG_PREDICT_TYPE_STUB`` (``cog build`` bakes it in from cog.yaml's
``run``/``predict``) and the port from ``PORT``, then hands over to coglet, the
Rust server. coglet takes its slot count only from ``COG_MAX_CONCURRENCY`` and
spawns its worker as plain ``python``, so the venv's ``bin`` must come first on
``PATH``, as it does in the image. It validates inputs against
``.cog/openapi_schema.json`` when present (``cog build`` writes that file; the
benchmark fixtures ship one).

Usage as a script (foreground, Ctrl-C to stop)::

    .venv/bin/python bench/cog_server.py bench/fixtures/echo_async --port 5000
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

# The bench scripts run as files, so their folder is on sys.path.
from common import BENCH_DIR, launch_server, stop_process

__all__ = [
    "COG_VERSION",
    "cog_versions",
    "ensure_cog_venv",
    "project_settings",
    "start_cog_server",
    "stop_cog_server",
]

COG_VERSION = "0.23.1"
VENV_DIR = BENCH_DIR / f"cog-{COG_VERSION}-venv"


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def cog_versions(python: Path) -> dict[str, str]:
    out = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, sys;"
            "print(m.version('cog'), m.version('coglet'), sys.version.split()[0])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {"cog": out[0], "coglet": out[1], "python": out[2]}


def ensure_cog_venv(venv: Path = VENV_DIR, base_python: str | None = None) -> Path:
    """Create (or reuse) a venv holding cog==0.23.1 and its coglet; return its python.

    The venv is built from the interpreter running this script (its base
    interpreter when run from a venv), so Cog and Vendo run the model on the same
    Python.
    """
    python = _venv_python(venv)
    if python.exists():
        try:
            if cog_versions(python)["cog"] == COG_VERSION:
                return python
        except (subprocess.CalledProcessError, IndexError):
            pass
    base = base_python or getattr(sys, "_base_executable", None) or sys.executable
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"cog=={COG_VERSION}",
        ],
        check=True,
    )
    versions = cog_versions(python)
    if versions["cog"] != COG_VERSION:
        raise RuntimeError(f"expected cog {COG_VERSION} in {venv}, found {versions}")
    return python


def project_settings(project_dir: Path) -> tuple[str, int | None]:
    """The predictor reference and ``concurrency.max`` from a project's cog.yaml."""
    config = yaml.safe_load((project_dir / "cog.yaml").read_text()) or {}
    ref = config.get("run") or config.get("predict")
    if not ref:
        raise ValueError(f"{project_dir / 'cog.yaml'}: no 'run' or 'predict' key")
    concurrency = (config.get("concurrency") or {}).get("max")
    return str(ref), int(concurrency) if concurrency is not None else None


def start_cog_server(
    project_dir: Path,
    port: int,
    env: dict[str, str] | None = None,
    *,
    python: Path | None = None,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    timeout: float = 120.0,
) -> subprocess.Popen[bytes]:
    """Start Cog's server on ``project_dir`` and wait until ``/health-check`` says READY.

    ``env`` overrides the computed environment (e.g. ``COG_MAX_CONCURRENCY``).
    The returned process leads its own session; stop it with
    :func:`stop_cog_server`. Its ``ready_s`` attribute holds launch-to-READY
    seconds.
    """
    project_dir = project_dir.resolve()
    python = python or ensure_cog_venv()
    ref, concurrency = project_settings(project_dir)
    child_env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    child_env.update(
        PATH=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(python.parent.parent),
        PORT=str(port),
        COG_PREDICT_TYPE_STUB=ref,
        PYTHONUNBUFFERED="1",
    )
    if concurrency is not None:
        child_env["COG_MAX_CONCURRENCY"] = str(concurrency)
    child_env.update(env or {})
    log_path = log_path or BENCH_DIR / "logs" / f"cog-{project_dir.name}-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return launch_server(
        [str(python), "-m", "cog.server.http", "--host", host],
        cwd=project_dir,
        env=child_env,
        log_path=log_path,
        host=host,
        port=port,
        timeout=timeout,
    )


def stop_cog_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and its coglet worker (by the process group of the PID we started)."""
    stop_process(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    # Turn SIGTERM into SystemExit so the finally below stops the server's group.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    python = ensure_cog_venv()
    print(f"cog venv: {python} {cog_versions(python)}", flush=True)
    proc = start_cog_server(args.project, args.port, host=args.host)
    print(f"READY on http://{args.host}:{args.port} (pid {proc.pid}); Ctrl-C stops it", flush=True)
    try:
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_cog_server(proc)


if __name__ == "__main__":
    main()
