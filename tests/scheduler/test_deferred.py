"""Deferred runs (``Scheduler.run_and_wait``, what ``Prefer: wait`` uses): a
prediction that can start at once is run first and written once, as it ends; one whose
waiter gives up is written as it stands and goes on as usual. Real stores (SQLite and
PostgreSQL) and real runner children."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_pool import ITERATOR_SCHEMA, Platform, running_platform

from support import until_async


@pytest.fixture
async def platform(tmp_path: Path, db_url: str) -> AsyncIterator[Platform]:
    async with running_platform(tmp_path, db_url) as p:
        yield p


async def warm(p: Platform, fixture: str = "plt_echo") -> str:
    version = p.version(fixture)
    await p.wait(p.submit(version, text="warm"))
    return version


async def defer(p: Platform, row: Any, count_run: bool = False) -> asyncio.Future[None] | None:
    """What ``run_and_wait`` does first: start the prediction unwritten when it can (the
    future: its end), else queue it as usual (None)."""
    ended = p.scheduler.sync.start_deferred(row, count_run=count_run)
    if ended is None:
        await p.scheduler.schedule(row, count_run=count_run)
    return ended


def logged(p: Platform, prediction_id: str) -> bool:
    """The run is going and its child's first log line has come back."""
    run = p.scheduler.run(prediction_id)
    return run is not None and bool(run.all_logs)


def outputs(p: Platform, prediction_id: str) -> int:
    run = p.scheduler.run(prediction_id)
    return len(run.outputs) if run is not None else 0


def run_count(p: Platform) -> int:
    model = p.store.catalog.model_by_id(p.model.id)
    assert model is not None
    return model.run_count


async def test_a_deferred_run_is_written_once_as_it_ends(platform: Platform) -> None:
    version = await warm(platform)
    runs_before = run_count(platform)
    row = platform.row(version, text="quick")
    writer = platform.scheduler.writer
    batches, writes = writer.batches, writer.writes
    ended = await defer(platform, row, count_run=True)
    assert ended is not None
    assert platform.store.predictions.get(row.id) is None  # running, not written
    await asyncio.wait_for(ended, 30)
    stored = platform.store.predictions.get(row.id)
    assert stored is not None and stored.status == "succeeded" and stored.output == "quick"
    assert "echoing quick" in stored.logs
    assert stored.started_at is not None and stored.completed_at is not None
    assert stored.created_at <= stored.started_at <= stored.completed_at
    assert stored.metrics is not None and stored.metrics["predict_time"] >= 0
    assert stored.run_input is None and stored.input == {"text": "quick"}
    assert platform.store.predictions.job(row.id) is None
    assert run_count(platform) == runs_before + 1
    # one insert, with the run counted, in one transaction
    assert (writer.batches - batches, writer.writes - writes) == (1, 1)
    outcome = platform.scheduler.outcome(row.id)
    assert outcome is not None and outcome["status"] == "succeeded"


async def test_persist_writes_a_running_deferred_run_which_then_goes_on(
    platform: Platform,
) -> None:
    version = await warm(platform)
    row = platform.row(version, text="slow", sleep=1.5)
    ended = await defer(platform, row, count_run=True)
    assert ended is not None
    await until_async(lambda: logged(platform, row.id))  # the child logged and now sleeps
    await platform.scheduler.sync.persist(row.id)
    stored = platform.store.predictions.get(row.id)
    assert stored is not None and stored.status == "processing"
    assert stored.started_at is not None and "echoing slow" in stored.logs
    job = platform.store.predictions.job(row.id)
    assert job is not None and job.state == "claimed"
    await platform.scheduler.sync.persist(row.id)  # a second call changes nothing
    await asyncio.wait_for(ended, 30)
    final = platform.store.predictions.get(row.id)
    assert final is not None and final.status == "succeeded" and final.output == "slow"
    assert final.logs.count("echoing slow") == 1
    assert platform.store.predictions.job(row.id) is None


async def test_persist_after_the_end_returns_once_the_row_is_there(platform: Platform) -> None:
    version = await warm(platform)
    row = platform.row(version, text="x")
    ended = await defer(platform, row)
    assert ended is not None
    await asyncio.wait_for(ended, 30)
    await platform.scheduler.sync.persist(row.id)
    stored = platform.store.predictions.get(row.id)
    assert stored is not None and stored.status == "succeeded"


async def test_no_deferral_when_it_cannot_start_at_once(platform: Platform) -> None:
    cold = platform.version("plt_echo")  # no runner yet
    row = platform.row(cold, text="cold")
    assert await defer(platform, row) is None
    queued = platform.store.predictions.get(row.id)
    assert queued is not None  # written before submit returned
    assert (await platform.wait(row.id)).status == "succeeded"

    version = await warm(platform)
    hooked = platform.row(version, text="hooked")
    hooked.webhook = "http://127.0.0.1:9/hook"  # the relay reads the row: written first
    assert await defer(platform, hooked) is None
    assert platform.store.predictions.get(hooked.id) is not None
    await platform.wait(hooked.id)


async def test_a_deferred_run_past_its_deadline_is_canceled(platform: Platform) -> None:
    version = await warm(platform)
    row = platform.row(version, deadline_in=1.0, text="slow", sleep=30)
    ended = await defer(platform, row)
    assert ended is not None
    await asyncio.wait_for(ended, 20)
    stored = platform.store.predictions.get(row.id)
    assert stored is not None and stored.status == "canceled"
    assert stored.cancel_reason == "deadline"


async def test_a_deferred_run_stopped_with_the_server_is_recorded(tmp_path: Path) -> None:
    async with running_platform(tmp_path) as p:
        version = await warm(p)
        row = p.row(version, text="slow", sleep=30)
        ended = await defer(p, row)
        assert ended is not None
        await until_async(lambda: logged(p, row.id))
        await p.scheduler.stop()
        assert ended.done()
        stored = p.store.predictions.get(row.id)
        assert stored is not None and stored.status == "failed"
        assert stored.error is not None and "interrupted" in stored.error
        assert p.store.predictions.job(row.id) is None


async def test_the_bus_gets_what_a_persisted_run_did_before(platform: Platform) -> None:
    # an SSE reader that comes once the wait ran out sees the whole story, in order
    version = platform.version("plt_stream", schema=ITERATOR_SCHEMA)
    await platform.wait(platform.submit(version, count=1))  # warm
    row = platform.row(version, count=6, pause=0.3)
    ended = await defer(platform, row)
    assert ended is not None
    await until_async(lambda: outputs(platform, row.id) >= 2)  # a few items are out, unseen
    assert platform.bus.history(row.id) is None
    await platform.scheduler.sync.persist(row.id)
    events = [(e.event, e.data) async for e in platform.bus.subscribe(row.id)]
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done"
    assert [d for n, d in events if n == "output"] == [f"item {i}" for i in range(6)]
    logs = "".join(d for n, d in events if n == "logs")
    assert all(f"step {i}" in logs for i in range(6))
    await asyncio.wait_for(ended, 30)
    stored = platform.store.predictions.get(row.id)
    assert stored is not None and stored.status == "succeeded"
    assert stored.output == [f"item {i}" for i in range(6)]
    assert all(stored.logs.count(f"step {i}") == 1 for i in range(6))
