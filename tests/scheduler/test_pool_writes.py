"""How the scheduler records runs: group-committed writes, a ``processing`` write only
for runs that last, events on the bus ahead of their writes (after them for webhooks),
output files kept in order. Real SQLite/PostgreSQL stores and real runner children."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_pool import ITERATOR_SCHEMA, Platform, running_platform

from support import until_async
from vendo.scheduler import Scheduler
from vendo.store import new_id, utcnow
from vendo.store.tables import PredictionRow


@pytest.fixture
async def platform(tmp_path: Path, db_url: str) -> AsyncIterator[Platform]:
    # SQLite and PostgreSQL (db_url, tests/conftest.py)
    async with running_platform(tmp_path, db_url) as p:
        yield p


async def test_a_quick_run_goes_to_its_end_in_one_write(platform: Platform) -> None:
    version = platform.version("plt_echo")
    await platform.wait(platform.submit(version, text="warm"))
    pid = platform.submit(version, text="quick")
    events = [e.event async for e in platform.bus.subscribe(pid)]
    assert events[0] == "start" and events[-1] == "done"
    row = await platform.wait(pid)
    assert row.status == "succeeded" and row.output == "quick"
    assert "echoing quick" in row.logs
    # started_at is recorded with the terminal state even when processing never was
    assert row.started_at is not None and row.completed_at is not None
    assert row.created_at <= row.started_at <= row.completed_at
    assert row.metrics is not None and row.metrics["predict_time"] >= 0
    assert row.metrics["total_time"] >= row.metrics["predict_time"]
    assert row.run_input is None
    assert platform.store.predictions.job(pid) is None


async def test_a_run_that_lasts_shows_processing(platform: Platform) -> None:
    version = platform.version("plt_echo")
    pid = platform.submit(version, text="slow", sleep=1.5)

    def processing() -> bool:
        row = platform.store.predictions.get(pid)
        return row is not None and row.status == "processing" and row.started_at is not None

    await until_async(processing)
    row = await platform.wait(pid)
    assert row.status == "succeeded" and row.output == "slow"


async def test_a_burst_shares_transactions_and_every_run_ends(platform: Platform) -> None:
    version = platform.version("plt_slots", concurrency=2)
    ids = [platform.submit(version, n=i, sleep=0) for i in range(30)]
    rows = [await platform.wait(i) for i in ids]
    assert [r.output for r in rows] == list(range(30))
    assert all(r.status == "succeeded" for r in rows)
    assert all(platform.store.predictions.job(i) is None for i in ids)
    writer = platform.scheduler.writer
    # claims, starts, logs and ends of several runs went out together
    assert writer.batches < writer.writes


async def test_a_fast_stream_reaches_bus_and_store_complete_and_in_order(
    platform: Platform,
) -> None:
    version = platform.version("plt_stream", schema=ITERATOR_SCHEMA)
    pid = platform.submit(version, count=2000)
    outputs = [e.data async for e in platform.bus.subscribe(pid) if e.event == "output"]
    expected = [f"item {i}" for i in range(2000)]
    assert outputs == expected
    row = await platform.wait(pid)
    assert row.status == "succeeded"
    assert row.output == expected
    assert "step 1999" in row.logs


async def test_with_a_webhook_each_event_follows_its_write(platform: Platform) -> None:
    # the webhook relay reads the row when it hears an event: the row must have it
    version = platform.version("plt_stream", schema=ITERATOR_SCHEMA)
    row = PredictionRow(
        id=new_id(),
        owner_id=platform.user.id,
        model="admin/m",
        version_id=version,
        input={"count": 5},
        run_input={"count": 5},
        status="starting",
        created_at=utcnow(),
        webhook="http://127.0.0.1:9/hook",
    )
    platform.queue.submit(row)
    platform.scheduler.notify(version)
    seen = 0
    async for event in platform.bus.subscribe(row.id):
        stored = platform.store.predictions.get(row.id)
        assert stored is not None
        if event.event == "start":
            assert stored.status != "starting" and stored.started_at is not None
        elif event.event == "output":
            seen += 1
            assert isinstance(stored.output, list) and len(stored.output) >= seen
        elif event.event == "logs":
            assert event.data in stored.logs
        elif event.event == "done":
            assert stored.status == "succeeded"
    assert seen == 5


async def test_output_files_of_an_iterator_keep_their_place(tmp_path: Path) -> None:
    from vendo.files.storage import LocalStorage

    p = Platform(tmp_path)
    storage = LocalStorage.from_settings(p.settings, p.store)
    p.scheduler = Scheduler(p.settings, p.store, p.bus, storage, queue=p.queue)
    await p.scheduler.start()
    try:
        pid = p.submit(p.version("plt_file_stream", schema=ITERATOR_SCHEMA))
        events = [(e.event, e.data) async for e in p.bus.subscribe(pid)]
        outputs = [d for n, d in events if n == "output"]
        sizes = []
        for ref in outputs:
            stored = p.store.files.get(ref["__vendo_file_id__"])
            assert stored is not None
            sizes.append(stored.size)
        assert sizes == [1, 2, 3]
        row = await p.wait(pid)
        assert row.status == "succeeded", row.error
        assert row.output == outputs
        assert "file 3" in row.logs
    finally:
        await p.scheduler.stop()
        p.store.close()


async def test_jobs_queued_without_a_notify_are_found(tmp_path: Path) -> None:
    # another process's API (scaled mode) queues jobs this scheduler is not told about
    async with running_platform(tmp_path) as p:
        version = p.version("plt_echo")
        await p.wait(p.submit(version, text="warm"))
        row = PredictionRow(
            id=new_id(),
            owner_id=p.user.id,
            model="admin/m",
            version_id=version,
            input={"text": "unnotified"},
            run_input={"text": "unnotified"},
            status="starting",
            created_at=utcnow(),
        )
        p.queue.submit(row)  # no notify
        done = await p.wait(row.id, timeout=30)
        assert done.status == "succeeded" and done.output == "unnotified"


async def test_submit_through_the_scheduler_is_durable_and_runs(platform: Platform) -> None:
    version = platform.version("plt_echo")
    await platform.wait(platform.submit(version, text="warm"))  # a warm runner: direct
    before = platform.store.catalog.model_by_id(platform.model.id)
    assert before is not None
    rows = [platform.row(version, text=f"t{i}") for i in range(3)]
    done = []
    for row in rows:
        await platform.scheduler.schedule(row, count_run=True)
        # accepted means stored: the 201 may go out now
        assert platform.store.predictions.get(row.id) is not None
        # a free slot on a warm runner: inserted claimed, never waited in the queue
        job = platform.store.predictions.job(row.id)
        assert job is None or job.state == "claimed"
        done.append(await platform.wait(row.id))
    assert [d.output for d in done] == ["t0", "t1", "t2"]
    assert all(d.status == "succeeded" for d in done)
    assert all(platform.store.predictions.job(row.id) is None for row in rows)
    after = platform.store.catalog.model_by_id(platform.model.id)
    assert after is not None and after.run_count == before.run_count + 3


async def test_submits_beyond_the_slots_wait_their_turn(platform: Platform) -> None:
    version = platform.version("plt_slots", concurrency=2)
    await platform.wait(platform.submit(version, n=-1, sleep=0))
    rows = [platform.row(version, n=i, sleep=0.3) for i in range(6)]
    for row in rows:
        await platform.scheduler.schedule(row)
    done = [await platform.wait(row.id) for row in rows]
    assert [d.output for d in done] == list(range(6))
    started = [d.started_at for d in done]
    assert all(s is not None for s in started)
    # oldest first: the two that took the free slots ran before any queued one
    assert max(started[:2]) <= min(started[2:])  # type: ignore[type-var]


async def test_outcome_matches_the_stored_row(platform: Platform) -> None:
    # Prefer: wait may answer from outcome() instead of reading the row back
    version = platform.version("plt_stream", schema=ITERATOR_SCHEMA)
    pid = platform.submit(version, count=3)
    assert await platform.bus.wait_done(pid, 60)
    outcome = platform.scheduler.outcome(pid)
    row = platform.store.predictions.get(pid)
    assert outcome is not None and row is not None
    assert outcome["status"] == row.status == "succeeded"
    assert outcome["output"] == row.output == ["item 0", "item 1", "item 2"]
    assert outcome["logs"] == row.logs
    assert outcome["error"] == row.error
    assert outcome["metrics"] == row.metrics
    assert outcome["started_at"] == row.started_at
    assert outcome["completed_at"] == row.completed_at
    assert platform.scheduler.outcome("unknown") is None
