"""Child processes of a test: started, waited for, and stopped by the PID they were
started with (never by name), with the runners a server started stopped along."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

from support.waiting import until

__all__ = [
    "children_of",
    "http_ready",
    "is_running",
    "start_server",
    "stop_process",
    "wait_gone",
]


def children_of(pid: int) -> list[int]:
    """PIDs of the direct children of ``pid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after the ")"
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def is_running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: Sequence[int], timeout: float = 5.0) -> list[int]:
    """The PIDs of ``pids`` still running after up to ``timeout`` seconds (none, as
    soon as all are gone)."""
    with contextlib.suppress(AssertionError):  # the survivors are the answer
        until(lambda: not any(is_running(pid) for pid in pids), timeout=timeout)
    return [pid for pid in pids if is_running(pid)]


def http_ready(
    url: str, headers: Mapping[str, str] | None = None, verify: object = True
) -> Callable[[], bool]:
    """A readiness check: ``GET url`` answers 2xx."""

    def check() -> bool:
        try:
            return httpx.get(url, headers=headers, verify=verify, timeout=5).is_success  # type: ignore[arg-type]
        except httpx.TransportError:
            return False

    return check


def start_server(
    argv: Sequence[str],
    *,
    ready: Callable[[], bool],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output in ``log_path`` and wait until ``ready()``; a
    process that exits first, or never gets ready, is stopped and reported with the
    end of its log."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(argv), env=dict(env) if env is not None else None, cwd=cwd, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{argv[:4]} exited:\n{log_path.read_text()[-3000:]}")
        return ready()

    try:
        until(up, timeout=timeout, what=f"{' '.join(argv[:4])} to answer")
    except BaseException:
        stop_process(process)
        raise
    return process


def stop_process(
    process: subprocess.Popen[bytes] | subprocess.Popen[str] | None,
    *,
    sig: int = signal.SIGTERM,
    timeout: float = 30.0,
) -> None:
    """Send ``sig`` to ``process`` and wait for it; SIGKILL it (and its children) if it
    does not exit in ``timeout``. Children it leaves behind (a server's runners, each in
    a session of its own) are killed with their process group."""
    if process is None or process.poll() is not None:
        return
    children = children_of(process.pid)
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        for pid in [process.pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(10)
    for pid in children:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
