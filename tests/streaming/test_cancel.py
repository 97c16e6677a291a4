"""Cancellation on /v1, end to end: cooperative code stops at once on its runner; code
stuck in a blocking C call with every signal blocked gets its runner killed after the
grace period (2 s here) and replaced; ``Cancel-After`` deadlines take the same path."""

from __future__ import annotations

import httpx
import pytest
from streaming_support import Server, runner_pids

from support import until


def running(
    server: Server, version: str, fixture: str, inputs: dict[str, object]
) -> tuple[str, set[int]]:
    """A prediction inside its blocking call, and the pids of its model's runners."""
    p = server.create(version, inputs)
    server.wait(p["id"], ("processing",), timeout=60)
    # inside the blocking call
    until(lambda: "sleep" in server.get(p["id"])["logs"], timeout=10, what="the sleep to start")
    return p["id"], runner_pids(server, fixture)


def test_cooperative_code_is_canceled_on_its_runner(
    server: Server, versions: dict[str, str]
) -> None:
    pid, before = running(server, versions["coop"], "cancel_cooperative", {"seconds": 60})
    answer = server.cancel(pid)
    assert answer["id"] == pid
    done = server.wait(pid, timeout=30)
    assert done["status"] == "canceled"
    assert done["completed_at"] is not None
    assert before
    assert runner_pids(server, "cancel_cooperative") == before, "no kill for a cooperative cancel"


def test_code_stuck_in_native_call_gets_its_runner_replaced(
    server: Server, versions: dict[str, str]
) -> None:
    pid, before = running(server, versions["stuck"], "cancel_stuck", {"seconds": 600})
    server.cancel(pid)
    done = server.wait(pid, timeout=60)
    assert done["status"] == "canceled"
    assert "stuck in libc sleep()" in done["logs"]
    assert before
    assert not before & runner_pids(server, "cancel_stuck"), "the stuck runner was killed"
    # the version still works: a fresh runner takes the next prediction
    again = server.create(versions["stuck"], {"seconds": 0})
    assert server.wait(again["id"], timeout=60)["status"] == "succeeded"


@pytest.mark.parametrize(
    ("model", "inputs"), [("coop", {"seconds": 60}), ("stuck", {"seconds": 600})]
)
def test_cancel_after_deadline_cancels_a_running_prediction(
    server: Server, versions: dict[str, str], model: str, inputs: dict[str, object]
) -> None:
    r = httpx.post(
        f"{server.url}/v1/predictions",
        json={"version": versions[model], "input": inputs},
        headers={**server.headers, "Cancel-After": "5s"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["deadline"] is not None
    server.wait(created["id"], ("processing",), timeout=60)
    done = server.wait(created["id"], timeout=60)
    assert done["status"] == "canceled"
    assert done["deadline"] == created["deadline"]
