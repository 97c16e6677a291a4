"""A real ``vendo serve`` for the push tests: a child process on a free loopback port
with its own data dir, stopped (or killed) by the PID it was started with; accounts are
added straight in its data dir's store, as ``vendo`` account commands do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from support import free_port, http_ready, start_server, stop_process

ADMIN_TOKEN = "push-admin-token"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class LiveServer:
    work: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

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
        self.process = start_server(
            [sys.executable, "-m", "vendo", "serve", "--host", "127.0.0.1", "--port"]
            + [str(self.port)],
            ready=http_ready(f"{self.url}/v1/hardware", auth(ADMIN_TOKEN)),
            log_path=self.work / "server.log",
            env=self.env(),
            cwd=self.work,
        )

    def stop(self, *, kill: bool = False) -> None:
        process, self.process = self.process, None
        stop_process(process, sig=signal.SIGKILL if kill else signal.SIGTERM)

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
