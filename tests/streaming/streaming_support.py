"""A real ``vendo serve`` process on loopback with fixture models registered, for the
streaming, webhook and cancel tests (tests are not a package: imported by name).

Models are registered straight into the store before the server starts: the runner is
this interpreter with Vendo's runtime on ``PYTHONPATH``, so no environment is built.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from vendo.runner.dist import install_runtime
from vendo.store import Store

TOKEN = "streaming-admin-token"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def version_id(name: str) -> str:
    return hashlib.sha256(f"streaming-tests/{name}".encode()).hexdigest()


def _openapi(project: Path, runtime: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(runtime)}
    out = subprocess.run(
        [sys.executable, "-m", "vendo.runner", "openapi", "--project", str(project)]
        + ["--ref", "predict.py:Predictor"],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    schema: dict[str, Any] = json.loads(out.stdout)
    return schema


def register_models(data_dir: Path, fixtures: Mapping[str, str]) -> dict[str, str]:
    """Create the admin (token :data:`TOKEN`) and one model ``admin/<name>`` per
    ``{name: fixture dir}``; returns ``{name: version id}``."""
    runtime = install_runtime(data_dir.parent / "runtime")
    store = Store.from_settings(data_dir, None)
    try:
        admin, _ = store.accounts.ensure_admin(TOKEN)
        versions = {}
        for name, fixture in fixtures.items():
            project = FIXTURES / fixture
            model = store.catalog.create_model(admin.id, name, visibility="public", hardware="cpu")
            vid = version_id(name)
            store.catalog.create_version(
                model.id,
                vid,
                openapi_schema=_openapi(project, runtime),
                cog_version="vendo-tests",
                package_path=str(project),
                environment={"python": sys.executable, "runtime_path": str(runtime)},
                config={"predict": "predict.py:Predictor"},
            )
            versions[name] = vid
        return versions
    finally:
        store.close()


def _children(pid: int) -> list[int]:
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


@dataclass
class Server:
    """One ``vendo serve`` child process."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 60.0) -> None:
        env = {
            **os.environ,
            "VENDO_API_TOKEN": TOKEN,
            "PYTHONPATH": str(REPO / "src"),
            **self.env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vendo",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            env=env,
            cwd=self.data_dir.parent,  # no stray .env from the repository
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                r = httpx.get(f"{self.url}/v1/account", headers=self.headers, timeout=2)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not come up")

    def stop(self) -> None:
        """SIGTERM (graceful: runners closed, pending webhooks left in the database);
        SIGKILL of the server and its runner children if it does not exit in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        children = _children(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            for pid in [process.pid, *children]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.wait(10)
        for pid in children:  # runners are reaped by the server; make sure
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    # --- API helpers -----------------------------------------------------------------

    def create(self, version: str, inputs: dict[str, Any], **body: Any) -> dict[str, Any]:
        r = httpx.post(
            f"{self.url}/v1/predictions",
            json={"version": version, "input": inputs, **body},
            headers=self.headers,
            timeout=30,
        )
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result

    def get(self, prediction_id: str) -> dict[str, Any]:
        r = httpx.get(
            f"{self.url}/v1/predictions/{prediction_id}", headers=self.headers, timeout=30
        )
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    def cancel(self, prediction_id: str) -> dict[str, Any]:
        r = httpx.post(
            f"{self.url}/v1/predictions/{prediction_id}/cancel", headers=self.headers, timeout=30
        )
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    def wait(
        self, prediction_id: str, statuses: tuple[str, ...] = (), timeout: float = 60.0
    ) -> dict[str, Any]:
        """Poll until the prediction is in one of ``statuses`` (default: terminal)."""
        wanted = statuses or ("succeeded", "failed", "canceled")
        deadline = time.monotonic() + timeout
        while True:
            p = self.get(prediction_id)
            if p["status"] in wanted:
                return p
            if time.monotonic() > deadline:
                raise AssertionError(f"still {p['status']} after {timeout}s: {p}")
            time.sleep(0.05)

    def secret(self) -> str:
        r = httpx.get(f"{self.url}/v1/webhooks/default/secret", headers=self.headers, timeout=10)
        assert r.status_code == 200, r.text
        return str(r.json()["key"])


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """A strict little SSE parser for raw checks: yields {id, event, data} and comments."""
    event: dict[str, Any] = {"data": []}
    for line in lines:
        if line == "":
            if event.get("event") is not None or event["data"]:
                yield {**event, "data": "\n".join(event["data"])}
            event = {"data": []}
            continue
        if line.startswith(":"):
            yield {"comment": line[1:]}
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            event["data"].append(value)
        else:
            event[name] = value


@dataclass
class WebhookReceiver:
    """A webhook endpoint on 127.0.0.1 that can be taken down and brought back on the
    same port; it records every request (verification is the test's business)."""

    port: int = field(default_factory=free_port)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.requests.append(
                        {
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                            "at": time.time(),
                        }
                    )
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.received()
            if predicate(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"webhooks so far: {[r['body'][:200] for r in got]}")
            time.sleep(0.05)


def runner_pids(server: Server, fixture: str = "") -> set[int]:
    """The runner children of ``server`` (processes running ``vendo.runner``), only
    those of the model in ``tests/fixtures/<fixture>`` when given."""
    assert server.process is not None
    found = set()
    for pid in _children(server.process.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"vendo.runner" in cmdline and str(FIXTURES / fixture).encode() in cmdline:
            found.add(pid)
    return found
