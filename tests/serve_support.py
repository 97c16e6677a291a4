"""``vendo serve`` and the other commands as a user types them: child processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support import stop_process, until

__all__ = ["clean_env", "serving", "stop", "vendo"]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any VENDO_/REPLICATE_ setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VENDO_", "REPLICATE_"))}
    env.update(extra)
    return env


def vendo(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vendo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server by the PID this test started, as Ctrl-C/`kill` would."""
    stop_process(process)


@contextmanager
def serving(
    cwd: Path, env: dict[str, str], *args: str, data_dir: Path | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``vendo serve ARGS`` in ``cwd``; yields the process and the URL it recorded in its
    data dir (``server.json``) once it listens. ``--port 0`` picks a free port."""
    record = (data_dir or cwd / ".vendo") / "server.json"
    log_path = cwd / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "vendo", "serve", *args],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def recorded() -> str | None:
            assert process.poll() is None, "vendo serve exited:\n" + log_path.read_text()
            try:
                return str(json.loads(record.read_text())["url"])
            except (OSError, ValueError, KeyError):
                return None

        try:
            url = until(recorded, timeout=60, what=lambda: "vendo serve: " + log_path.read_text())
            yield process, url
        finally:
            stop(process)
