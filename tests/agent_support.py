"""``vendo agent`` processes for the scaled-mode tests (#15): started as a user would,
ready once they say so, stopped (or killed) by the PID the test started."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from support import start_server

__all__ = ["AGENT_FIXTURE", "FAST_LIVENESS", "agent_log", "start_agent"]

AGENT_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "agent_echo"
# heartbeats twice a second, lost after 3 s without one: a test sees recovery quickly
FAST_LIVENESS = {"VENDO_AGENT_HEARTBEAT_INTERVAL": "0.5", "VENDO_AGENT_LOST_TIMEOUT": "3"}


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
