"""Whatever goes wrong between taking a runner slot and the runner accepting the
prediction fails that one prediction with a clear error and frees everything it held:
the pool's slot, the runner's slot and its in-flight entry. The next prediction of the
same version (one slot only) then runs at once. Real stores and real runner children;
the failures are driven at that exact point."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_pool import Platform, running_platform

from vendo.scheduler import process
from vendo.scheduler.process import RunnerProcess
from vendo.store.tables import PredictionRow


@pytest.fixture
async def platform(tmp_path: Path, db_url: str) -> AsyncIterator[Platform]:
    async with running_platform(tmp_path, db_url) as p:
        yield p


def _encode_fails(message: dict[str, Any]) -> bytes:
    if message.get("type") == "predict" and message["input"].get("text") == "boom":
        raise RuntimeError("injected encode failure")
    return _real_encode(message)


_real_encode = process.wire_frame


def _send_fails(self: RunnerProcess, message: dict[str, Any]) -> bool:
    if message.get("type") == "predict" and message["input"].get("text") == "boom":
        raise OSError("injected socket failure")
    return _real_send(self, message)


_real_send = RunnerProcess._send


def _predict_fails(self: RunnerProcess, slot: Any, prediction_id: str, *a: Any, **k: Any) -> Any:
    # a failure before the runner even records the prediction (the slot is taken)
    raise RuntimeError("injected failure before the runner took the prediction")


FAILURES: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "encode": lambda mp: mp.setattr(process, "wire_frame", _encode_fails),
    "send": lambda mp: mp.setattr(RunnerProcess, "_send", _send_fails),
    "predict": lambda mp: mp.setattr(RunnerProcess, "predict", _predict_fails),
}


@pytest.fixture(params=sorted(FAILURES))
def failure(request: pytest.FixtureRequest) -> Iterator[Callable[[pytest.MonkeyPatch], None]]:
    yield FAILURES[request.param]


async def submit_and_wait(p: Platform, row: PredictionRow, defer: bool) -> PredictionRow:
    # deferred: what run_and_wait does first when the prediction can start at once
    ended = p.scheduler.sync.start_deferred(row) if defer else None
    if ended is None:
        await p.scheduler.schedule(row)
        return await p.wait(row.id, timeout=5)
    await asyncio.wait_for(ended, 5)  # a deferred run publishes nothing: read the store
    stored = p.store.predictions.get(row.id)
    assert stored is not None
    return stored


def assert_nothing_held(p: Platform, version: str) -> None:
    pool = p.scheduler.pool(version)
    assert pool is not None
    assert pool.reserved == 0, "the pool slot was not released"
    runner = pool.ready()
    assert runner is not None, "the runner should still be up and ready"
    assert runner.busy_slots == 0, "the runner slot or its in-flight entry leaked"
    assert p.scheduler.running() == []


async def next_one_runs_at_once(p: Platform, version: str) -> None:
    started = time.monotonic()
    row = await p.wait(p.submit(version, text="after"), timeout=5)
    assert row.status == "succeeded" and row.output == "after", row.error
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("defer", [False, True], ids=["queued", "deferred"])
async def test_a_failed_handoff_fails_one_prediction_and_frees_its_slot(
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    failure: Callable[[pytest.MonkeyPatch], None],
    defer: bool,
) -> None:
    version = platform.version("plt_echo")  # one slot: a leak would block the next one
    await platform.wait(platform.submit(version, text="warm"))
    for _ in range(5):  # repeated: each failure must leave nothing behind
        with monkeypatch.context() as mp:
            failure(mp)
            row = platform.row(version, text="boom")
            stored = await submit_and_wait(platform, row, defer)
        assert stored.status == "failed"
        assert platform.store.predictions.job(row.id) is None
        assert_nothing_held(platform, version)
        await next_one_runs_at_once(platform, version)
        assert stored.error is not None and "could not be handed to the model" in stored.error


async def test_an_input_that_cannot_be_encoded_fails_alone(tmp_path: Path) -> None:
    # The reported case: a lone UTF-16 surrogate reaches the runner message (the API
    # refuses it at create; this is the scheduler's own guard). SQLite only: PostgreSQL
    # refuses to store such a string at all.
    async with running_platform(tmp_path) as p:
        version = p.version("plt_echo")
        await p.wait(p.submit(version, text="warm"))
        for defer in (False, True, False):
            row = p.row(version, text="\ud800")
            stored = await submit_and_wait(p, row, defer)
            assert stored.status == "failed"
            assert_nothing_held(p, version)
            await next_one_runs_at_once(p, version)
            assert stored.error is not None and "surrogate" in stored.error
