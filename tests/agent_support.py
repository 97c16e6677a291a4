"""``vendo agent`` processes for the scaled-mode tests (#15): started as a user would,
ready once they say so, stopped (or killed) by the PID the test started; and the
environment the servers and agents of such a test share."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet

from s3_server import AWS_ENV
from serve_support import clean_env
from support import start_server

__all__ = ["AGENT_FIXTURE", "FAST_LIVENESS", "agent_log", "scaled_env", "start_agent"]

AGENT_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "agent_echo"
# heartbeats twice a second, lost after 3 s without one: a test sees recovery quickly
FAST_LIVENESS = {"VENDO_AGENT_HEARTBEAT_INTERVAL": "0.5", "VENDO_AGENT_LOST_TIMEOUT": "3"}


def scaled_env(
    *, database: str, bucket: str, endpoint: str, token: str, **extra: str
) -> dict[str, str]:
    """The environment every ``vendo serve``/``vendo agent``/``vendo push`` of one
    scaled-mode test shares: this process's less its VENDO_/REPLICATE_ settings, plus
    the database URL, the ``s3://`` bucket URL and its S3 endpoint (with moto's fake
    AWS credentials), the admin token, a fresh secrets key (one for all the processes,
    so a secret sealed by one opens on another), models on the nearest Python, and
    ``extra``."""
    return clean_env(
        **AWS_ENV,
        VENDO_DATABASE_URL=database,
        VENDO_STORAGE_URL=bucket,
        VENDO_STORAGE_ENDPOINT_URL=endpoint,
        VENDO_API_TOKEN=token,
        VENDO_SECRETS_KEY=Fernet.generate_key().decode(),
        VENDO_ALLOW_NEAREST_PYTHON="true",
        **extra,
    )


def agent_log(data_dir: Path) -> Path:
    return data_dir.parent / f"{data_dir.name}.log"


def start_agent(
    data_dir: Path,
    env: dict[str, str],
    name: str,
    *args: str,
    prefix: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """``vendo agent --name NAME ARGS`` with its own data dir (``prefix``: a command it
    runs under, ``ip netns exec NS``), once it runs models. Its runs log ``ran on
    NAME`` (``AGENT_LABEL``)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = agent_log(data_dir)
    argv = [*prefix, sys.executable, "-m", "vendo", "agent", "--name", name, *args]
    return start_server(
        [*argv, "--data-dir", str(data_dir)],
        ready=lambda: "running models" in log.read_text(errors="replace"),
        log_path=log,
        env={**env, "AGENT_LABEL": name},
        cwd=data_dir,
        timeout=120,
    )
