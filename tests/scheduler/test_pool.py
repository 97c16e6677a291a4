"""Runner pools and the scheduler, without HTTP: a real SQLite store in a tmp dir and
real runner children started from tests/fixtures/plt_*."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import vendo
from support import until_async
from vendo.config import Settings
from vendo.queue import EventBus, Queue
from vendo.scheduler import Scheduler
from vendo.store import Store, new_id, utcnow
from vendo.store.tables import PredictionRow

FIXTURES = Path(__file__).parent.parent / "fixtures"
RUNTIME = Path(vendo.__file__).resolve().parent.parent  # src/: the runtime, nothing else
ITERATOR_SCHEMA = {
    "components": {
        "schemas": {
            "Output": {"type": "array", "items": {"type": "string"}, "x-cog-array-type": "iterator"}
        }
    }
}


class Platform:
    """A store, a bus and a started scheduler, plus helpers to submit and wait."""

    def __init__(self, tmp: Path, db_url: str | None = None, **settings: Any) -> None:
        self.settings = Settings(data_dir=tmp, _env_file=None, **settings)
        self.store = Store.open(db_url or f"sqlite:///{tmp / 'vendo.db'}")
        self.bus = EventBus()
        self.queue = Queue(self.store)
        self.scheduler = Scheduler(self.settings, self.store, self.bus, None, queue=self.queue)
        self.user, _ = self.store.accounts.ensure_admin("test-token")
        found = self.store.catalog.model(self.user.username, "m")
        self.model = found or self.store.catalog.create_model(self.user.id, "m")

    def version(self, fixture: str, *, concurrency: int = 1, schema: dict | None = None) -> str:
        version_id = f"{fixture}-{new_id()}".ljust(64, "0")[:64]
        self.store.catalog.create_version(
            self.model.id,
            version_id,
            openapi_schema=schema or {},
            package_path=str(FIXTURES / fixture),
            environment={"python": sys.executable, "runtime_path": str(RUNTIME)},
            config={"predict": "predict.py:Predictor", "concurrency_max": concurrency},
        )
        return version_id

    def row(
        self, version_id: str, deadline_in: float | None = None, **inputs: Any
    ) -> PredictionRow:
        """A new prediction of model ``m`` (not written)."""
        now = utcnow()
        return PredictionRow(
            id=new_id(),
            owner_id=self.user.id,
            model_id=self.model.id,
            model="admin/m",
            version_id=version_id,
            input=dict(inputs),
            run_input=dict(inputs),
            status="starting",
            created_at=now,
            deadline=now + timedelta(seconds=deadline_in) if deadline_in is not None else None,
        )

    def submit(self, version_id: str, deadline_in: float | None = None, **inputs: Any) -> str:
        row = self.row(version_id, deadline_in, **inputs)
        self.queue.submit(row)
        self.scheduler.notify(version_id)
        return row.id

    async def wait(self, prediction_id: str, timeout: float = 60) -> PredictionRow:
        assert await self.bus.wait_done(prediction_id, timeout), "prediction did not finish"
        row = self.store.predictions.get(prediction_id)
        assert row is not None
        return row


@contextlib.asynccontextmanager
async def running_platform(
    tmp_path: Path, db_url: str | None = None, **settings: Any
) -> AsyncIterator[Platform]:
    p = Platform(tmp_path, db_url, **settings)
    await p.scheduler.start()
    try:
        yield p
    finally:
        pids = [pid for pool in p.scheduler.pools() for pid in pool.pids()]
        await p.scheduler.stop()
        p.store.close()
        for pid in pids:  # every child we started is gone
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


@pytest.fixture
async def platform(tmp_path: Path, db_url: str) -> AsyncIterator[Platform]:
    # every scheduler test runs on SQLite and on PostgreSQL (db_url, tests/conftest.py)
    async with running_platform(tmp_path, db_url) as p:
        yield p


async def test_cold_start_then_warm_runner_is_reused(platform: Platform) -> None:
    version = platform.version("plt_echo")
    first = await platform.wait(platform.submit(version, text="one"))
    assert first.status == "succeeded", first.error
    assert first.output == "one"
    assert "echoing one" in first.logs
    assert first.started_at is not None and first.completed_at is not None
    assert set(first.metrics or {}) >= {"predict_time", "total_time"}
    pool = platform.scheduler.pool(version)
    assert pool is not None and pool.warm
    pid = pool.pids()
    second = await platform.wait(platform.submit(version, text="two"))
    assert second.output == "two"
    assert pool.pids() == pid and pool.cold_starts == 1


async def test_events_are_published_in_order(platform: Platform) -> None:
    version = platform.version("plt_stream", schema=ITERATOR_SCHEMA)
    pid = platform.submit(version, count=3)
    events = [(e.event, e.data) async for e in platform.bus.subscribe(pid)]
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done"
    assert [d for n, d in events if n == "output"] == ["item 0", "item 1", "item 2"]
    assert "step 2" in "".join(d for n, d in events if n == "logs")
    row = await platform.wait(pid)
    assert row.status == "succeeded"
    assert row.output == ["item 0", "item 1", "item 2"]


async def test_iterator_output_grows_while_processing(platform: Platform) -> None:
    version = platform.version("plt_stream", schema=ITERATOR_SCHEMA)
    pid = platform.submit(version, count=4, pause=0.4)

    def partial() -> bool:
        row = platform.store.predictions.get(pid)
        return (
            row is not None
            and row.status == "processing"
            and isinstance(row.output, list)
            and 0 < len(row.output) < 4
        )

    await until_async(partial)
    row = await platform.wait(pid)
    assert row.output == [f"item {i}" for i in range(4)]


async def test_idle_runner_stops_and_next_prediction_cold_starts(tmp_path: Path) -> None:
    async with running_platform(tmp_path, idle_timeout=0.3) as platform:
        await _idle_scenario(platform)


async def _idle_scenario(platform: Platform) -> None:
    version = platform.version("plt_echo")
    assert (await platform.wait(platform.submit(version))).status == "succeeded"
    pool = platform.scheduler.pool(version)
    assert pool is not None
    [pid] = pool.pids()
    await until_async(lambda: not pool.warm)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await until_async(gone)
    assert (await platform.wait(platform.submit(version, text="again"))).output == "again"
    assert pool.cold_starts == 2


async def test_slots_are_honoured_and_extra_jobs_wait_queued(platform: Platform) -> None:
    version = platform.version("plt_slots", concurrency=2)
    ids = [platform.submit(version, n=i, sleep=0.6) for i in range(5)]
    seen_queued = False

    def sample() -> bool:
        """Checks the states while they run; true once every prediction is done."""
        nonlocal seen_queued
        rows = [platform.store.predictions.get(i) for i in ids]
        processing = sum(1 for r in rows if r is not None and r.status == "processing")
        assert processing <= 2
        jobs = [platform.store.predictions.job(i) for i in ids]
        seen_queued = seen_queued or sum(1 for j in jobs if j and j.state == "queued") >= 2
        return all(platform.bus.is_done(i) for i in ids)

    await until_async(sample, timeout=60, interval=0.05)
    rows = [await platform.wait(i) for i in ids]
    assert [r.output for r in rows] == list(range(5))
    assert all(r.status == "succeeded" for r in rows)
    assert seen_queued
    # oldest first: the first two ran before any of the waiting ones started
    started = [r.started_at for r in rows]
    assert max(started[:2]) <= min(started[2:])


async def test_cancel_queued_is_immediate_and_never_runs(platform: Platform) -> None:
    version = platform.version("plt_echo")
    running = platform.submit(version, text="long", sleep=2)
    queued = platform.submit(version, text="never")
    await until_async(lambda: platform.store.predictions.get(running).status == "processing")
    assert await platform.scheduler.cancel(queued)
    row = platform.store.predictions.get(queued)
    assert row.status == "canceled" and row.started_at is None
    assert await platform.scheduler.cancel(running)
    row = await platform.wait(running)
    assert row.status == "canceled"
    assert (await platform.wait(queued)).status == "canceled"


async def test_cancel_after_deadline_of_a_queued_prediction(platform: Platform) -> None:
    version = platform.version("plt_echo")
    blocker = platform.submit(version, text="block", sleep=1.5)
    late = platform.submit(version, deadline_in=0.3, text="late")
    row = await platform.wait(late)
    assert row.status == "canceled"
    assert row.started_at is None and row.output is None
    assert row.cancel_reason == "deadline"
    assert (await platform.wait(blocker)).status == "succeeded"


async def test_cancel_after_deadline_of_a_running_prediction(platform: Platform) -> None:
    version = platform.version("plt_echo")
    await platform.wait(platform.submit(version))  # warm: the deadline hits mid-run
    pid = platform.submit(version, deadline_in=1.0, text="slow", sleep=30)
    row = await platform.wait(pid)
    assert row.status == "canceled"
    assert row.started_at is not None


async def test_crash_fails_the_prediction_and_the_runner_is_replaced(platform: Platform) -> None:
    version = platform.version("plt_crash")
    ok = await platform.wait(platform.submit(version))
    crashed = await platform.wait(platform.submit(version, crash=True))
    assert crashed.status == "failed"
    assert crashed.error == "worker exited unexpectedly"
    after = await platform.wait(platform.submit(version))
    assert after.status == "succeeded"
    assert after.output != ok.output  # a new child (another pid) answered


async def test_queued_predictions_survive_a_restart(tmp_path: Path) -> None:
    first = Platform(tmp_path)
    version = first.version("plt_echo")
    pid = first.submit(version, text="after restart")  # queued, never claimed
    first.store.close()

    second = Platform.__new__(Platform)
    second.settings = Settings(data_dir=tmp_path)
    second.store = Store.open(f"sqlite:///{tmp_path / 'vendo.db'}")
    second.bus = EventBus()
    second.queue = Queue(second.store)
    second.scheduler = Scheduler(second.settings, second.store, second.bus, None)
    await second.scheduler.start()
    try:
        row = await second.wait(pid)
        assert row.output == "after restart"
    finally:
        await second.scheduler.stop()
        second.store.close()


async def test_unknown_version_fails_its_jobs(platform: Platform) -> None:
    pid = platform.submit("f" * 64, text="x")
    row = await platform.wait(pid)
    assert row.status == "failed"
    assert "does not exist" in (row.error or "")


async def test_file_outputs_go_to_file_storage(tmp_path: Path) -> None:
    from vendo.files.storage import LocalStorage

    p = Platform(tmp_path)
    storage = LocalStorage.from_settings(p.settings, p.store)
    p.scheduler = Scheduler(p.settings, p.store, p.bus, storage, queue=p.queue)
    await p.scheduler.start()
    try:
        row = await p.wait(p.submit(p.version("plt_file")))
        assert row.status == "succeeded", row.error
        assert set(row.output) == {"__vendo_file_id__"}
        [stored] = p.store.files.of_prediction(row.id)
        assert stored.id == row.output["__vendo_file_id__"]
        assert stored.size == len("file output")
    finally:
        await p.scheduler.stop()
        p.store.close()


async def test_setup_failure_fails_the_prediction_with_its_logs(platform: Platform) -> None:
    version = platform.version("plt_setup_fail")
    row = await platform.wait(platform.submit(version))
    assert row.status == "failed"
    assert "weights are missing" in (row.error or "")
    assert "loading weights" in row.logs
    pool = platform.scheduler.pool(version)
    assert pool is not None and not pool.warm
    # the next prediction tries a fresh runner (the cause may have been fixed)
    again = await platform.wait(platform.submit(version))
    assert again.status == "failed"
    assert pool.cold_starts == 2


async def test_cancel_during_a_cold_start_is_immediate(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "setup-may-end"
    monkeypatch.setenv("PLT_SLOW_SETUP_GATE", str(gate))  # setup() lasts until it exists
    version = platform.version("plt_slow_setup")
    pid = platform.submit(version)
    # claimed and handed to a run here (the claim's commit is seen a moment before)
    await until_async(lambda: pid in platform.scheduler.running())
    assert await platform.scheduler.cancel(pid)
    row = await platform.wait(pid)  # setup() cannot have ended: the gate is closed
    assert row.status == "canceled" and row.started_at is None
    gate.touch()
    # the cold start went on: the next prediction uses that runner
    assert (await platform.wait(platform.submit(version))).output == "ready"
    pool = platform.scheduler.pool(version)
    assert pool is not None and pool.cold_starts == 1


async def test_a_stop_during_a_cold_start_leaves_the_prediction_queued(tmp_path: Path) -> None:
    first = Platform(tmp_path)
    await first.scheduler.start()
    version = first.version("plt_slow_setup")
    pid = first.submit(version)
    await until_async(
        lambda: (j := first.store.predictions.job(pid)) is not None and j.state == "claimed"
    )
    await first.scheduler.stop()
    row = first.store.predictions.get(pid)
    job = first.store.predictions.job(pid)
    assert row is not None and row.status == "starting"
    assert job is not None and job.state == "queued"
    first.store.close()

    async with running_platform(tmp_path) as second:
        assert (await second.wait(pid)).output == "ready"


async def test_instance_transitions_reach_the_observers(tmp_path: Path) -> None:
    events: list[Any] = []
    async with running_platform(tmp_path, idle_timeout=0.3) as platform:
        platform.scheduler.add_instance_observer(events.append)
        version = platform.version("plt_echo")
        assert (await platform.wait(platform.submit(version))).status == "succeeded"
        await until_async(lambda: bool(events) and events[-1].state == "stopped")
    states = [e.state for e in events]
    # started with its prediction waiting: active from setup on, idle, stopped when idle
    assert states == ["setting_up", "active", "idle", "stopped"]
    assert {(e.pool, e.sku, e.owner) for e in events} == {(f"version:{version}", "cpu", "admin")}
    assert len({e.instance_id for e in events}) == 1
