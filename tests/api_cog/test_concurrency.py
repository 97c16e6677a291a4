"""Concurrency slots through HTTP: cog.yaml concurrency.max, COG_MAX_CONCURRENCY (§5, §10 17)."""

from __future__ import annotations

import asyncio
from typing import Any


async def test_concurrency_max_runs_at_once_and_409_beyond(serve: Any) -> None:
    served = await serve("srv_async_slots")
    runs = [
        asyncio.ensure_future(served.client.post("/predictions", json={"input": {"seconds": 1.0}}))
        for _ in range(3)
    ]
    await served.wait_status("BUSY")
    extra = await served.client.post("/predictions", json={"input": {"seconds": 0}})
    assert extra.status_code == 409
    results = [r.json() for r in await asyncio.gather(*runs)]
    assert all(r["status"] == "succeeded" for r in results)
    assert max(r["output"] for r in results) == 3
    assert (await served.client.get("/health-check")).json()["status"] == "READY"


async def test_env_beats_cog_yaml(serve: Any) -> None:
    served = await serve("srv_async_slots", environment={"COG_MAX_CONCURRENCY": "2"})
    assert served.server.main_runner.max_concurrency == 2
    runs = [
        asyncio.ensure_future(served.client.post("/predictions", json={"input": {"seconds": 0.5}}))
        for _ in range(2)
    ]
    await served.wait_status("BUSY")
    assert (await served.client.post("/predictions", json={})).status_code == 409
    await asyncio.gather(*runs)
