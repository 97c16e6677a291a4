"""Runner instances' states (RunnerProcess -> observer) and the usage meter that adds
them up and writes them in batches."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from support import ManualClock
from vendo.scheduler.instances import Instance, InstanceState, PoolIdentity, UsageMeter
from vendo.store import Store, database_url
from vendo.store.tables import InstanceUsageRow

S = InstanceState
IDENTITY = PoolIdentity("version:v", "gpu-t4", 1, "alice/priv", "v")


async def _predict(runner: Any, pid: str, input: dict[str, Any]) -> dict[str, Any]:
    slot = runner.acquire_slot()
    assert slot is not None
    done: dict[str, Any] = await asyncio.wait_for(runner.predict(slot, pid, input), 30)
    return done


async def test_a_runner_reports_each_change_of_state_once(make_runner: Any) -> None:
    states: list[InstanceState] = []
    runner = await make_runner("srv_echo", on_state=states.append)
    await runner.wait_ready(30)
    assert (await _predict(runner, "p1", {"text": "a"}))["status"] == "succeeded"
    assert (await _predict(runner, "p2", {"text": "b"}))["status"] == "succeeded"
    await runner.close()
    assert states == [S.SETTING_UP, S.IDLE, S.ACTIVE, S.IDLE, S.ACTIVE, S.IDLE, S.STOPPED]


async def test_a_crashed_child_sets_up_again(make_runner: Any) -> None:
    states: list[InstanceState] = []
    runner = await make_runner("srv_crash", restart_backoff=0.05, on_state=states.append)
    await runner.wait_ready(30)
    assert (await _predict(runner, "p1", {"crash": True}))["status"] == "failed"
    await runner.wait_ready(30)
    assert states.count(S.SETTING_UP) == 2
    assert states[-2:] == [S.SETTING_UP, S.IDLE]
    await runner.close()
    assert states[-1] is S.STOPPED


def _rows(store: Store) -> list[tuple[str, str, float]]:
    with store.read() as s:
        found = s.execute(
            sa.select(
                InstanceUsageRow.instance_id, InstanceUsageRow.state, InstanceUsageRow.seconds
            )
        )
        return sorted((i, state, round(secs, 6)) for i, state, secs in found)


async def test_the_meter_adds_up_seconds_per_state_and_writes_a_row_each(tmp_path: Path) -> None:
    store = Store.open(database_url(tmp_path, None))
    store.accounts.create_user("alice")  # the owner, id 1
    clock = ManualClock()
    writes: list[int] = []

    async def write(rows: list[dict[str, Any]]) -> None:
        writes.append(len(rows))
        store.usage.record(rows)

    meter = UsageMeter(write, clock=clock.time)
    a, b = Instance("a", IDENTITY), Instance("b", IDENTITY)
    steps = [(a, S.SETTING_UP, 2.0), (a, S.IDLE, 1.0), (a, S.ACTIVE, 0.5), (a, S.IDLE, 0.25)]
    steps += [(a, S.ACTIVE, 0.5), (b, S.SETTING_UP, 1.0)]
    for instance, state, then in steps:
        meter.transition(instance, state)
        clock.advance(then)
    await meter.flush()  # open intervals are cut at the flush and go on
    assert _rows(store) == [
        ("a", "active", 2.0),
        ("a", "idle", 1.25),
        ("a", "setting_up", 2.0),
        ("b", "setting_up", 1.0),
    ]
    clock.advance(3.0)
    meter.transition(a, S.STOPPED)
    await meter.close()  # writes what is left: a's last 3 s, b's 3 s so far
    assert ("a", "active", 3.0) in _rows(store) and ("b", "setting_up", 3.0) in _rows(store)
    assert writes == [4, 2]
    with store.read() as s:
        row = s.scalars(sa.select(InstanceUsageRow).where(InstanceUsageRow.state == "idle")).one()
    assert (row.ended_at - row.started_at).total_seconds() >= row.seconds
    assert (row.hardware, row.owner_id, row.model, row.shared) == ("gpu-t4", 1, "alice/priv", False)
    store.close()


async def test_rows_the_database_refused_are_written_at_the_next_flush(tmp_path: Path) -> None:
    store = Store.open(database_url(tmp_path, None))
    store.accounts.create_user("alice")  # the owner, id 1
    clock = ManualClock()
    refuse = [True]

    async def write(rows: list[dict[str, Any]]) -> None:
        if refuse.pop(0) if refuse else False:
            raise OSError("database away")
        store.usage.record(rows)

    meter = UsageMeter(write, clock=clock.time)
    a = Instance("a", IDENTITY)
    meter.transition(a, S.IDLE)
    clock.advance(2.0)
    meter.transition(a, S.STOPPED)
    await meter.flush()
    assert _rows(store) == []
    await meter.flush()
    assert _rows(store) == [("a", "idle", 2.0)]
    store.close()
