from __future__ import annotations

import asyncio
import os
from typing import Any

from support import until_async
from vendo.scheduler.process import WORKER_EXITED, RunnerProcess, RunnerState


async def run(runner: RunnerProcess, pid: str, input: dict[str, Any]) -> tuple[dict, list]:
    events: list[dict[str, Any]] = []
    slot = runner.acquire_slot()
    assert slot is not None
    done = await asyncio.wait_for(runner.predict(slot, pid, input, on_event=events.append), 30)
    return done, events


async def test_ready_predict_and_events(make_runner: Any) -> None:
    runner = await make_runner("srv_echo")
    assert runner.state is RunnerState.STARTING
    assert await runner.wait_ready(30) is RunnerState.READY
    assert runner.openapi is not None and "Input" in runner.openapi["components"]["schemas"]
    assert "setting up echo" in runner.setup.as_dict()["logs"]
    done, events = await run(runner, "p1", {"text": "ab", "count": 2})
    assert done["status"] == "succeeded" and done["output"] == "abab"
    assert "predict_time" in done["metrics"]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "done" and "log" in kinds
    assert runner.busy_slots == 0


async def test_slots_are_free_when_done_is_delivered(make_runner: Any) -> None:
    runner = await make_runner("srv_echo")
    await runner.wait_ready(30)
    seen: list[int] = []
    slot = runner.acquire_slot()
    assert slot is not None
    assert runner.acquire_slot() is None  # one slot only
    assert runner.state is RunnerState.BUSY

    def on_event(message: dict[str, Any]) -> None:
        if message["type"] == "done":
            seen.append(runner.busy_slots)

    await runner.predict(slot, "p1", {}, on_event=on_event)
    assert seen == [0]
    assert runner.state is RunnerState.READY


async def test_crash_fails_inflight_and_restarts(make_runner: Any) -> None:
    runner = await make_runner("srv_crash", restart_backoff=0.05)
    await runner.wait_ready(30)
    first_pid = runner.pid
    done, _ = await run(runner, "p1", {"crash": True})
    assert done["status"] == "failed" and done["error"] == WORKER_EXITED
    assert await runner.wait_ready(30) is RunnerState.READY
    assert runner.pid != first_pid and runner.restarts == 1
    done, _ = await run(runner, "p2", {})
    assert done["status"] == "succeeded" and done["output"] == "alive"


async def test_defunct_after_crashes_in_a_row(make_runner: Any) -> None:
    runner = await make_runner("srv_crash", restart_backoff=0.01, max_restarts=1)
    await runner.wait_ready(30)
    await run(runner, "p1", {"crash": True})
    assert await runner.wait_ready(30) is RunnerState.READY
    await run(runner, "p2", {"crash": True})
    await until_async(lambda: runner.state is RunnerState.DEFUNCT, timeout=10)
    assert runner.acquire_slot() is None


async def test_setup_failure(make_runner: Any) -> None:
    runner = await make_runner("srv_setup_fail")
    assert await runner.wait_ready(30) is RunnerState.SETUP_FAILED
    assert "weights are missing" in (runner.setup_error or "")
    setup = runner.setup.as_dict()
    assert setup["status"] == "failed" and "loading weights" in setup["logs"]
    assert runner.acquire_slot() is None


async def test_cancel_sleep(make_runner: Any) -> None:
    runner = await make_runner("srv_sleep")
    await runner.wait_ready(30)
    slot = runner.acquire_slot()
    assert slot is not None
    started = asyncio.Event()
    done = runner.predict(
        slot, "p1", {"seconds": 60}, on_event=lambda m: m["type"] == "started" and started.set()
    )
    await asyncio.wait_for(started.wait(), 10)
    assert runner.cancel("p1")
    assert not runner.cancel("nope")
    result = await asyncio.wait_for(done, 5)
    assert result["status"] == "canceled"
    assert runner.state is RunnerState.READY


async def test_ignored_cancel_kills_and_replaces(make_runner: Any) -> None:
    runner = await make_runner("srv_sleep", cancel_grace=0.5)
    await runner.wait_ready(30)
    pid = runner.pid
    slot = runner.acquire_slot()
    assert slot is not None
    logs: list[str] = []
    done = runner.predict(
        slot,
        "p1",
        {"seconds": 60, "mode": "stubborn"},
        on_event=lambda m: m["type"] == "log" and logs.append(m["data"]),
    )
    await until_async(lambda: any("started" in line for line in logs))
    runner.cancel("p1")
    result = await asyncio.wait_for(done, 10)
    assert result["status"] == "canceled"
    assert await runner.wait_ready(30) is RunnerState.READY
    assert runner.pid != pid
    assert pid is not None
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive or _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except OSError:
        return True


async def test_close_stops_the_child(make_runner: Any) -> None:
    runner = await make_runner("srv_echo")
    await runner.wait_ready(30)
    pid = runner.pid
    await runner.close()
    assert runner.pid is None
    assert pid is not None and (_is_zombie(pid) or not os.path.exists(f"/proc/{pid}"))


async def test_hung_child_is_replaced(make_runner: Any, tmp_path: Any) -> None:
    import signal

    flag = tmp_path / "health"
    flag.write_text("ok")
    runner = await make_runner(
        "srv_health",
        env={"SRV_HEALTH_FILE": str(flag)},
        healthcheck_timeout=0.3,
        hung_after_missed_healthchecks=2,
    )
    assert await runner.wait_ready(30) is RunnerState.READY
    assert await runner.healthcheck() == (True, None)
    pid = runner.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # alive, but answers nothing
    ok, error = await runner.healthcheck()
    assert not ok and "timed out" in (error or "")
    await runner.healthcheck()  # the second miss in a row: killed and replaced
    await until_async(lambda: runner.pid not in (None, pid), timeout=10)
    assert await runner.wait_ready(30) is RunnerState.READY
    assert runner.pid != pid
    assert await runner.healthcheck() == (True, None)


async def test_child_on_each_python_version(make_runner: Any) -> None:
    """The driver starts the runtime on every interpreter 3.10-3.13 that is installed."""
    import pytest

    from vendo.envs.python import installed_pythons

    found = [str(i.path) for i in installed_pythons() if (3, 10) <= i.minor <= (3, 13)]
    if not found:
        pytest.skip("no Python 3.10-3.13 interpreter found")
    for python in found:
        runner = await make_runner("srv_echo", python=python)
        assert await runner.wait_ready(60) is RunnerState.READY, (python, runner.setup.logs)
        done, _ = await run(runner, f"p-{python}", {"text": "v"})
        assert done["output"] == "v", python


async def test_a_killed_childs_temp_files_are_removed(make_runner: Any) -> None:
    runner = await make_runner("srv_tempfiles", restart_backoff=0.05)
    await runner.wait_ready(30)
    done, _ = await run(runner, "p1", {})
    left = done["output"]
    assert os.path.exists(left)
    assert not left.startswith(os.environ.get("TMPDIR", "/nonexistent") + os.sep)
    runner.kill()
    await until_async(lambda: not os.path.exists(os.path.dirname(left)), timeout=10)
