from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from support import until_async
from vendo.api.cog import CogServer, CogServerOptions, create_app
from vendo.runner.dist import install_runtime

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture(scope="session")
def runtime_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_runtime(tmp_path_factory.mktemp("runtime"))


@dataclass
class Served:
    url: str
    client: httpx.AsyncClient
    server: CogServer
    uvicorn: uvicorn.Server

    async def wait_status(
        self, *states: str, timeout: float = 30.0, interval: float = 0.02
    ) -> dict[str, Any]:
        """The health check once its status is one of ``states``."""
        return await self._wait("/health-check", states, timeout, interval)

    async def wait_prediction(
        self, pid: str, *states: str, timeout: float = 30.0, path: str = "/predictions"
    ) -> dict[str, Any]:
        """The prediction once its status is one of ``states`` (default: terminal)."""
        return await self._wait(
            f"{path}/{pid}", states or ("succeeded", "failed", "canceled"), timeout, 0.02
        )

    async def webhooks_sent(self, pid: str) -> None:
        """Return once the prediction's webhook sender has sent its last message: the
        event after which nothing more can arrive (instead of a pause)."""
        record = self.server.services["predictions"].records[pid]
        assert record.webhook is not None, "the prediction has no webhook"
        await record.webhook.wait_closed()

    async def _wait(
        self, url: str, states: tuple[str, ...], timeout: float, interval: float
    ) -> dict[str, Any]:
        last: dict[str, Any] = {}

        async def reached() -> dict[str, Any] | None:
            r = await self.client.get(url)
            last.clear()
            last.update(r.json() if r.status_code == 200 else {"status": r.status_code})
            return dict(last) if last["status"] in states else None

        return await until_async(
            reached, timeout=timeout, interval=interval, what=lambda: f"{states}: {last}"
        )


@pytest.fixture
async def serve(runtime_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[uvicorn.Server, asyncio.Task[None], httpx.AsyncClient]] = []

    async def start(fixture: str, *, wait: bool = True, **overrides: Any) -> Served:
        options = CogServerOptions.from_project(
            FIXTURES / fixture,
            python=sys.executable,
            runtime_path=runtime_path,
            **overrides,
        )
        app = create_app(options)
        # IPPROTO_TCP, so asyncio sets TCP_NODELAY on accepted sockets (no 40 ms stalls)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        options.on_shutdown = lambda: setattr(server, "should_exit", True)
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))

        def serving() -> bool:
            if task.done():
                task.result()  # raises what stopped it
            return bool(server.started)

        await until_async(serving, what="uvicorn to start")
        url = f"http://127.0.0.1:{port}"
        client = httpx.AsyncClient(base_url=url, timeout=60.0)
        started.append((server, task, client))
        served = Served(url, client, app.state.cog, server)
        if wait:
            await served.wait_status("READY", "SETUP_FAILED", "DEFUNCT")
        return served

    yield start
    for server, task, client in started:
        await client.aclose()
        server.should_exit = True
        await asyncio.wait_for(task, 30)
