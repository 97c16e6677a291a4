"""A throwaway PostgreSQL server for the database tests on a machine that has the
PostgreSQL binaries but no server running: ``initdb`` into a temp dir, ``pg_ctl start``
on a free loopback port, stopped (and its PID checked gone) at the end.

``tests/conftest.py`` uses it when nothing answers at ``VENDO_TEST_DATABASE_URL``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import free_port, until

__all__ = ["ThrowawayPostgres", "find_bindir", "start_throwaway_postgres"]


def find_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: on PATH, else Debian's and Ubuntu's
    ``/usr/lib/postgresql/<version>/bin`` (the newest), which is not on PATH."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    for initdb in reversed(candidates):
        bindir = Path(initdb).parent
        if (bindir / "pg_ctl").exists():
            return bindir
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class ThrowawayPostgres:
    url: str
    pid: int
    root: Path
    bindir: Path
    run_as: dict[str, Any]

    def restart(self) -> None:
        """``pg_ctl restart`` (fast: every connection is cut), with the same options;
        returns once it accepts connections again."""
        done = subprocess.run(
            [str(self.bindir / "pg_ctl"), "restart", "-D", str(self.root / "data"), "-m", "fast",
             "-l", str(self.root / "server.log"), "-w", "-t", "60"],
            capture_output=True, text=True, timeout=90, **self.run_as,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl restart failed: {done.stdout}{done.stderr}")
        self.pid = int((self.root / "data" / "postmaster.pid").read_text().splitlines()[0])

    def stop(self) -> None:
        """``pg_ctl stop``, then make sure the server's PID is gone, then remove it all."""
        subprocess.run(
            [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.root / "data"), "-m", "fast",
             "-w", "-t", "30"],
            capture_output=True, timeout=60, **self.run_as,
        )  # fmt: skip
        with contextlib.suppress(AssertionError):  # SIGKILL below if it is still there
            until(lambda: not _alive(self.pid), timeout=10)
        if _alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def start_throwaway_postgres(
    bindir: Path | None = None, *, address: str = "127.0.0.1", trust: str | None = None
) -> ThrowawayPostgres:
    """Start a server with one database, ``test``, for user ``postgres`` (trust auth,
    loopback only, fsync off: it holds nothing worth keeping). ``address``: where it
    listens besides loopback (the URL names it), ``trust``: a network (CIDR) whose
    clients it lets in. Raises RuntimeError with the tool's output when it cannot."""
    bindir = bindir or find_bindir()
    if bindir is None:
        raise RuntimeError("initdb/pg_ctl not found (on PATH or in /usr/lib/postgresql/*/bin)")
    root = Path(tempfile.mkdtemp(prefix="vendo-test-pg-"))
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:
        # initdb refuses to run as root: run the server as the `postgres` account
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError("running as root and there is no `postgres` user") from None
        os.chown(root, account.pw_uid, account.pw_gid)
        run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    data, port = root / "data", free_port()

    def tool(*args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, **run_as)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stdout}{done.stderr}")

    try:
        tool(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "--no-sync", "-E", "UTF8", "--no-instructions")  # fmt: skip
        if trust is not None:
            with (data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {trust} trust\n")
        listen = ",".join(dict.fromkeys(["127.0.0.1", address]))
        options = (
            f"-p {port} -k {root} -c listen_addresses={listen} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        tool(str(bindir / "pg_ctl"), "start", "-D", str(data), "-o", options,
             "-l", str(root / "server.log"), "-w", "-t", "60")  # fmt: skip
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        server = ThrowawayPostgres(
            f"postgresql://postgres@{address}:{port}/test", pid, root, bindir, run_as
        )
        try:
            tool(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                 "test")  # fmt: skip
        except BaseException:
            server.stop()
            raise
        return server
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
