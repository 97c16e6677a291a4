"""Concurrency slots: COG_MAX_CONCURRENCY > cog.yaml concurrency.max > @concurrent > 1 (§5)."""

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
    assert served.server.engine.main_runner.max_concurrency == 2
    runs = [
        asyncio.ensure_future(served.client.post("/predictions", json={"input": {"seconds": 0.5}}))
        for _ in range(2)
    ]
    await served.wait_status("BUSY")
    assert (await served.client.post("/predictions", json={})).status_code == 409
    await asyncio.gather(*runs)


async def test_explicit_cog_yaml_max_1_beats_the_decorator(serve: Any) -> None:
    # cog.yaml says max: 1, @concurrent says 4: cog.yaml wins (§5 precedence)
    served = await serve("int_concurrency_one")
    assert served.server.engine.main_runner.max_concurrency == 1


async def test_decorator_decides_without_cog_yaml_max(serve: Any) -> None:
    served = await serve("rt_concurrent")  # @concurrent(max=2), no concurrency key
    assert served.server.engine.main_runner.max_concurrency == 2


def test_platform_runner_spec_keeps_absent_max_absent() -> None:
    from vendo.scheduler.spec import runner_spec
    from vendo.store.tables import VersionRow

    def spec_for(config: dict[str, Any]) -> Any:
        version = VersionRow(
            id="v" * 64,
            package_path="/models/m",
            environment={"python": "python3", "runtime_path": "/rt"},
            config={"predict": "predict.py:Predictor", **config},
        )
        return runner_spec(version)

    assert spec_for({"concurrency_max": None}).max_concurrency is None
    assert spec_for({}).max_concurrency is None
    assert spec_for({"concurrency_max": 1}).max_concurrency == 1
    assert spec_for({"concurrency_max": 3}).max_concurrency == 3
