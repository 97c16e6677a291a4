"""Instances' states (a pool -> its observers) and the usage meter that adds them up
and writes them in batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from test_pool import running_platform

from support import ManualClock, until_async
from vendo.scheduler.instance import InstanceEvent, InstanceState, Release
from vendo.scheduler.metering import UsageMeter
from vendo.scheduler.runner_spec import RunnerSpec
from vendo.store import Store, database_url
from vendo.store.tables import InstanceUsageRow

S = InstanceState
SPEC = RunnerSpec(project=Path("."), ref="predict.py:Predictor", python="python3")
RELEASE = Release("v", SPEC, owner="alice", owner_id=1, model="alice/priv")


def at(instance: str, state: InstanceState) -> InstanceEvent:
    return InstanceEvent(instance, "version:v", "gpu-t4", "alice", state, RELEASE)


async def test_a_pool_reports_each_instance_change_of_state(tmp_path: Path) -> None:
    async with running_platform(tmp_path, None, idle_timeout=0.2) as platform:
        events: list[InstanceEvent] = []
        platform.scheduler.add_instance_observer(events.append)
        version = platform.version("plt_echo")
        for text in ("a", "b"):
            assert (await platform.wait(platform.submit(version, text=text))).status == "succeeded"
        pool = platform.scheduler.pool(version)
        assert pool is not None
        await until_async(lambda: not pool.instances)  # idle past the timeout: stopped
    states = [e.state for e in events]
    assert states[0] is S.SETTING_UP and states[-1] is S.STOPPED
    assert S.ACTIVE in states and states.count(S.STOPPED) == 1
    assert all(states[i] is not states[i + 1] for i in range(len(states) - 1))  # changes only
    release = events[0].release
    model = platform.model
    assert (release.owner_id, release.model, release.shared) == (
        model.owner_id,
        "admin/m",
        model.visibility == "public",
    )
    assert {e.pool for e in events} == {f"version:{version}"}


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
    steps = [("a", S.SETTING_UP, 2.0), ("a", S.IDLE, 1.0), ("a", S.ACTIVE, 0.5)]
    steps += [("a", S.IDLE, 0.25), ("a", S.ACTIVE, 0.5), ("b", S.SETTING_UP, 1.0)]
    for instance, state, then in steps:
        meter.observe(at(instance, state))
        clock.advance(then)
    await meter.flush()  # open intervals are cut at the flush and go on
    assert _rows(store) == [
        ("a", "active", 2.0),
        ("a", "idle", 1.25),
        ("a", "setting_up", 2.0),
        ("b", "setting_up", 1.0),
    ]
    clock.advance(3.0)
    meter.observe(at("a", S.STOPPED))
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
    meter.observe(at("a", S.IDLE))
    clock.advance(2.0)
    meter.observe(at("a", S.STOPPED))
    await meter.flush()
    assert _rows(store) == []
    await meter.flush()
    assert _rows(store) == [("a", "idle", 2.0)]
    store.close()
