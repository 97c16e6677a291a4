"""A real ``vendo serve`` for the push tests: a child process on a free loopback port
with its own data dir, stopped (or killed) by the PID it was started with; accounts are
added straight in its data dir's store, as ``vendo`` account commands do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

ADMIN_TOKEN = "push-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class LiveServer:
    work: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.work / "data"

    def env(self, token: str = ADMIN_TOKEN) -> dict[str, str]:
        env = {
            **os.environ,
            "VENDO_API_TOKEN": token,
            "VENDO_DATA_DIR": str(self.data_dir),
            "VENDO_URL": self.url,
            "VENDO_ALLOW_NEAREST_PYTHON": "true",
            **self.extra_env,
        }
        env.pop("REPLICATE_API_TOKEN", None)
        return env

    def start(self) -> None:
        self._log = (self.work / "server.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vendo", "serve", "--host", "127.0.0.1", "--port"]
            + [str(self.port)],
            env=self.env(),
            cwd=self.work,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/v1/hardware", headers=auth(ADMIN_TOKEN)).is_success:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    "vendo serve did not start:\n" + (self.work / "server.log").read_text()
                )
            time.sleep(0.2)

    def stop(self, *, kill: bool = False) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def add_user(self, username: str) -> str:
        """A new user of the running server; returns its token."""
        from vendo.store import Store, database_url

        store = Store.open(database_url(self.data_dir, None))
        try:
            user = store.accounts.create_user(username)
            return store.accounts.create_token(user.id)
        finally:
            store.close()

    def user_exists(self, username: str) -> bool:
        from vendo.store import Store, database_url

        store = Store.open(database_url(self.data_dir, None))
        try:
            return store.accounts.user_named(username) is not None
        finally:
            store.close()

    def vendo(
        self, *args: str, token: str = ADMIN_TOKEN, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """``python -m vendo ARGS`` as a user types it, against this server."""
        return subprocess.run(
            [sys.executable, "-m", "vendo", *args],
            env=self.env(token),
            cwd=self.work,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def vendo_background(self, *args: str, token: str = ADMIN_TOKEN) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "vendo", *args],
            env=self.env(token),
            cwd=self.work,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
