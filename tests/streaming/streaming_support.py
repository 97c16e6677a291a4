"""A real ``vendo serve`` process on loopback with fixture models registered, for the
streaming, webhook and cancel tests (tests are not a package: imported by name).

Models are registered straight into the store before the server starts: the runner is
this interpreter with Vendo's runtime on ``PYTHONPATH``, so no environment is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support import children_of, free_port, http_ready, start_server, stop_process, until
from vendo.runner.dist import install_runtime
from vendo.store import Store

TOKEN = "streaming-admin-token"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]


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
        argv = [sys.executable, "-m", "vendo", "serve", "--port", str(self.port)]
        self.process = start_server(
            [*argv, "--data-dir", str(self.data_dir)],
            ready=http_ready(f"{self.url}/v1/account", self.headers),
            log_path=self.log_path,
            env=env,
            cwd=self.data_dir.parent,  # no stray .env from the repository
            timeout=timeout,
        )

    def stop(self) -> None:
        """SIGTERM (graceful: runners closed, pending webhooks left in the database);
        SIGKILL of the server and its runner children if it does not exit in time."""
        process, self.process = self.process, None
        stop_process(process, timeout=20)

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
        last: dict[str, Any] = {}

        def reached() -> dict[str, Any] | None:
            last.update(self.get(prediction_id))
            return dict(last) if last["status"] in wanted else None

        return until(reached, timeout=timeout, what=lambda: f"{wanted}; now {last}")

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


def runner_pids(server: Server, fixture: str = "") -> set[int]:
    """The runner children of ``server`` (processes running ``vendo.runner``), only
    those of the model in ``tests/fixtures/<fixture>`` when given."""
    assert server.process is not None
    found = set()
    for pid in children_of(server.process.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"vendo.runner" in cmdline and str(FIXTURES / fixture).encode() in cmdline:
            found.add(pid)
    return found
