"""Shared constants and types of the /v1 tests (tests are not a package)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from support import children_of, free_port, http_ready, start_server, stop_process, until
from vendo.api.v1.context import Platform

ADMIN_TOKEN = "admin-token"
VERSION = "ab" * 32
PRIVATE_VERSION = "cd" * 32

SCHEMA: dict[str, Any] = {
    "openapi": "3.0.2",
    "info": {"title": "Cog", "version": "0.1.0"},
    "paths": {},
    "components": {
        "schemas": {
            "Input": {
                "type": "object",
                "title": "Input",
                "required": ["text"],
                "properties": {
                    "text": {"type": "string", "title": "Text", "x-order": 0},
                    "count": {
                        "type": "integer",
                        "title": "Count",
                        "default": 1,
                        "minimum": 1,
                        "maximum": 10,
                        "x-order": 1,
                    },
                    "image": {"type": "string", "format": "uri", "x-order": 2},
                    "api_key": {
                        "type": "string",
                        "format": "password",
                        "x-cog-secret": True,
                        "x-order": 3,
                    },
                    "keys": {  # list[Secret]
                        "type": "array",
                        "items": {"type": "string", "format": "password", "x-cog-secret": True},
                        "x-order": 4,
                    },
                },
            },
            "Output": {"type": "string", "title": "Output"},
        }
    },
}


@dataclass
class Api:
    client: httpx.AsyncClient
    platform: Platform
    admin: dict[str, str]  # auth headers
    alice: dict[str, str]
    bob: dict[str, str]
    # the ASGI app itself, for a test that drives it below HTTP (echo_api sets it)
    app: Any = None


class EchoScheduler:
    """A stand-in for ``vendo.scheduler.Scheduler`` that runs no model: each claimed
    prediction "returns" its ``text`` input (and, given an ``image`` input, that file as
    a file output) through the same store, storage and bus calls the real one makes."""

    def __init__(self, settings: Any, store: Any, bus: Any, storage: Any) -> None:
        from vendo.queue import Queue

        self.store, self.bus, self.storage = store, bus, storage
        self.queue = Queue(store)
        self.hold = False  # True: leave jobs queued (as if every runner were busy)
        self.tasks: set[Any] = set()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        for task in list(self.tasks):
            await task

    def stop_pools_of(self, owner_id: int) -> None:
        pass  # no runners here

    async def schedule(
        self, prediction: Any, kind: str = "predict", *, count_run: bool = False
    ) -> None:
        from anyio import to_thread

        await to_thread.run_sync(
            lambda: self.queue.submit(prediction, kind=kind, count_run=count_run)
        )
        from vendo.status import pool_key

        self.notify(pool_key(prediction.version_id, prediction.deployment))

    async def run_and_wait(
        self,
        prediction: Any,
        wait: float,
        *,
        count_run: bool = False,
        before_queue: Any = None,
    ) -> None:
        # always written first: never an outcome to answer from
        if before_queue is not None:
            before_queue()
        await self.schedule(prediction, count_run=count_run)
        if wait > 0:
            await self.bus.wait_done(prediction.id, wait)

    def notify(self, pool: str) -> None:
        import asyncio

        if self.hold:
            return
        task = asyncio.get_running_loop().create_task(self._run(pool))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def cancel(self, prediction_id: str, reason: str = "canceled") -> bool:
        from anyio import to_thread

        row = await to_thread.run_sync(self.queue.cancel_queued, prediction_id, reason)
        if row is not None:
            self.bus.publish(prediction_id, "done", {"reason": "canceled"})
        return row is not None

    async def deployment_changed(self, key: str, *, disabled: bool = False) -> None:
        from anyio import to_thread

        if disabled:
            for row in await to_thread.run_sync(self.queue.cancel_pool, key):
                self.bus.publish(row.id, "done", {"reason": "canceled"})
        else:
            self.notify(key)

    def instance_count(self, key: str) -> int:
        return 0  # runs no instances

    def pool_states(self) -> dict[str, dict[str, int]]:
        return {}

    @property
    def metrics_registry(self) -> Any:
        from prometheus_client import CollectorRegistry

        return CollectorRegistry()

    async def _run(self, pool: str) -> None:
        import shutil
        from pathlib import Path

        from anyio import to_thread

        from vendo.store import SUCCEEDED

        for job in await to_thread.run_sync(self.queue.claim, pool, 10):
            row = self.store.predictions.get(job.prediction_id)
            self.store.predictions.mark_started(row.id)
            self.bus.publish(row.id, "start", {})
            self.store.predictions.append_logs(row.id, "echoing\n")
            self.bus.publish(row.id, "logs", "echoing\n")
            output: Any = row.run_input.get("text")
            if row.run_input.get("image"):
                out = Path(row.input_dir) / "out" / "result.png"
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(row.run_input["image"], out)
                output = self.storage.encode_outputs(
                    row.id, row.owner_id, {"__vendo_file__": str(out)}
                )
            done = self.store.predictions.finish(
                row.id, SUCCEEDED, output=output, metrics={"predict_time": 0.01}
            )
            self.queue.complete(job.id)
            self.bus.publish(row.id, "output", done.output)
            self.bus.publish(row.id, "done", {})


# --- live servers (end-to-end tests) ---------------------------------------------------

FIXTURES = Path(__file__).parents[1] / "fixtures"


def publish_models(
    data_dir: Path, packages: Path, models: dict[str, str], token: str
) -> dict[str, str]:
    """Build each fixture's environment and record it as a version of ``admin/<name>``
    straight in the data dir's store, the way push does. Returns name -> version id."""
    from vendo.config import Settings
    from vendo.envs.builder import build_project
    from vendo.store import Store, database_url

    settings = Settings(data_dir=data_dir, _env_file=None)
    store = Store.open(database_url(data_dir, None))
    try:
        admin, _ = store.accounts.ensure_admin(token)
        versions = {}
        for name, fixture in models.items():
            package = packages / name
            # a fixture's name, or the path of a project elsewhere (an example)
            shutil.copytree(FIXTURES / fixture, package)
            result = build_project(package, settings)
            model = store.catalog.create_model(admin.id, name, visibility="public", hardware="cpu")
            version_id = hashlib.sha256(f"{name}-{result.env_key}".encode()).hexdigest()
            store.catalog.create_version(
                model.id,
                version_id,
                openapi_schema=result.openapi,
                cog_version="0.13.7",
                package_path=str(package),
                environment={
                    "python": str(result.python),
                    "runtime_path": str(result.runtime_path),
                    "env": result.env,
                },
                config={
                    "predict": result.config.predict,
                    "train": result.config.train,
                    "concurrency_max": 1,
                },
            )
            versions[name] = version_id
        return versions
    finally:
        store.close()


def record_sleeper(data_dir: Path, token: str) -> dict[str, str]:
    """``admin/sleeper`` (the admin of ``token``) with versions ``a`` and ``b`` of the
    dep_sleep fixture, run by this interpreter with Vendo's source as the runtime: each
    sets ``DEP_RELEASE`` to its letter. Returns letter -> version id."""
    from vendo.store import Store, database_url

    store = Store.open(database_url(data_dir, None))
    try:
        admin, _ = store.accounts.ensure_admin(token)
        model = store.catalog.create_model(admin.id, "sleeper", visibility="public")
        versions = {}
        for letter in "ab":
            version_id = letter * 64
            add_local_version(
                store,
                model.id,
                version_id,
                "dep_sleep",
                concurrency_max=1,
                environment={"DEP_RELEASE": letter},
            )
            versions[letter] = version_id
        return versions
    finally:
        store.close()


def wait_status(
    client: httpx.Client, url: str, statuses: set[str], timeout: float = 60
) -> dict[str, Any]:
    """GET ``url`` (a prediction) until its status is one of ``statuses``."""
    last: dict[str, Any] = {}

    def reached() -> bool:
        last.clear()
        last.update(client.get(url).json())
        return last["status"] in statuses

    until(reached, timeout=timeout, what=lambda: f"{url} to be {statuses}: {last}")
    return last


class LiveServer:
    """``vendo serve`` as a child process on a free port (HTTPS given a cert and key)."""

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        token: str,
        *,
        cert: Path | None = None,
        key: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir, self.log_path, self.token = data_dir, log_path, token
        self.cert, self.key = cert, key
        self.env = env or {}  # VENDO_ settings over the defaults below
        self.port = free_port()
        scheme = "https" if cert else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        args = [
            sys.executable, "-m", "vendo", "serve", "--host", "127.0.0.1",
            "--port", str(self.port), "--data-dir", str(self.data_dir),
        ]  # fmt: skip
        if self.cert and self.key:
            args += ["--ssl-certfile", str(self.cert), "--ssl-keyfile", str(self.key)]
        env = {**os.environ, "VENDO_API_TOKEN": self.token, "VENDO_IDLE_TIMEOUT": "60", **self.env}
        verify: Any = ssl.create_default_context(cafile=str(self.cert)) if self.cert else True
        self.process = start_server(
            args,
            ready=http_ready(
                f"{self.url}/v1/hardware", {"Authorization": f"Bearer {self.token}"}, verify
            ),
            log_path=self.log_path,
            env=env,
            timeout=timeout,
        )

    def children(self) -> list[int]:
        """PIDs of the server's child processes (its runners), from /proc."""
        return [] if self.process is None else children_of(self.process.pid)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        process, self.process = self.process, None
        stop_process(process, sig=sig)


ECHO_SCHEMA: dict[str, Any] = {
    "openapi": "3.0.2",
    "info": {"title": "Cog", "version": "0.1.0"},
    "paths": {},
    "components": {
        "schemas": {
            "Input": {
                "type": "object",
                "title": "Input",
                "properties": {
                    "text": {"type": "string", "default": "hi", "x-order": 0},
                    "sleep": {"type": "number", "default": 0, "x-order": 1},
                },
            },
            "Output": {"type": "string", "title": "Output"},
        }
    },
}


def add_local_version(
    store: Any,
    model_id: int,
    version_id: str,
    fixture: str = "plt_echo",
    *,
    schema: dict[str, Any] | None = None,
    **config: Any,
) -> None:
    """A version of ``tests/fixtures/<fixture>`` run by this interpreter with Vendo's
    source as the runtime: no environment build. ``config`` adds to cog.yaml's
    (``concurrency_max``, ``environment``, ...)."""
    import vendo

    runtime = Path(vendo.__file__).resolve().parent.parent  # src/: the runtime only
    store.catalog.create_version(
        model_id,
        version_id,
        openapi_schema=ECHO_SCHEMA if schema is None else schema,
        package_path=str(FIXTURES / fixture),
        environment={"python": sys.executable, "runtime_path": str(runtime)},
        config={"predict": "predict.py:Predictor", **config},
    )


@contextlib.asynccontextmanager
async def echo_api(
    tmp_path: Path,
    db_url: str,
    version: str,
    *,
    concurrency_max: int | None = 1,
    raise_app_exceptions: bool = False,
    **settings: Any,
) -> AsyncIterator[Api]:
    """The app in-process with the real scheduler, and alice's public ``echo`` model
    whose ``version`` runs tests/fixtures/plt_echo in a real runner child (one slot
    unless ``concurrency_max`` says otherwise); bob is a second user. ``settings`` go
    over the defaults (``idle_timeout=2``, ...)."""
    from vendo.app import create_app
    from vendo.config import Settings

    database = None if db_url.startswith("sqlite") else db_url
    config = Settings(
        data_dir=tmp_path / "data",
        api_token=ADMIN_TOKEN,
        database_url=database,
        _env_file=None,
        **settings,
    )
    app = create_app(config)
    async with app.router.lifespan_context(app):
        p: Platform = app.state.platform
        store = p.store
        alice = store.accounts.create_user("alice")
        bob = store.accounts.create_user("bob")
        model = store.catalog.create_model(alice.id, "echo", visibility="public")
        config: dict[str, Any] = {}
        if concurrency_max is not None:
            config["concurrency_max"] = concurrency_max
        add_local_version(store, model.id, version, **config)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield Api(
                client=c,
                platform=p,
                admin={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                alice={"Authorization": f"Bearer {store.accounts.create_token(alice.id)}"},
                bob={"Authorization": f"Bearer {store.accounts.create_token(bob.id)}"},
                app=app,
            )
