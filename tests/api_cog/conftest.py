from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

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

    async def wait_status(self, *states: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = (await self.client.get("/health-check")).json()
            if body["status"] in states:
                return body
            await asyncio.sleep(0.05)
        raise AssertionError(f"health never reached {states}: {body}")


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
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
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
