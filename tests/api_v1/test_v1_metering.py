"""Metering end to end: a real ``vendo serve``, a real runner child, the official
``replicate`` client, and ``/v1/usage`` / ``vendo usage`` reading what was metered.

N predictions of a private model that sleeps 0.5 s each: the usage's active seconds
must match the sum of their ``metrics.predict_time``, and its setup + idle seconds the
rest of the runner child's lifetime, measured from the child itself (its start time in
/proc, and the moment its PID is gone), each within 5%.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_v1_support import LiveServer, add_local_version

from serve_support import clean_env, vendo
from support import is_running, until

replicate = pytest.importorskip("replicate")

ADMIN = "metering-admin-token"
ALICE = "metering-alice-token"
BOB = "metering-bob-token"
N = 8
SLEEP = 0.5
VERSION = "5a" * 32


def _publish(data_dir: Path) -> None:
    """alice's private model ``sleeper`` (tests/fixtures/plt_echo on this interpreter)."""
    from vendo.store import Store, database_url

    store = Store.open(database_url(data_dir, None))
    try:
        store.accounts.ensure_admin(ADMIN)
        alice = store.accounts.create_user("alice")
        bob = store.accounts.create_user("bob")
        store.accounts.create_token(alice.id, ALICE)
        store.accounts.create_token(bob.id, BOB)
        model = store.catalog.create_model(alice.id, "sleeper", visibility="private")
        add_local_version(store, model.id, VERSION, concurrency_max=1)
    finally:
        store.close()


def _started_since_boot(pid: int) -> float:
    """When ``pid`` started, in seconds since boot (field 22 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    ticks = int(stat.rsplit(")", 1)[1].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


def _since_boot() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _runner_pid(server: LiveServer) -> int:
    def found() -> list[int]:
        return server.children()

    [pid] = until(found, timeout=30, what="the runner child")
    return pid


def _usage(server: LiveServer, token: str, query: str = "") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{server.url}/v1/usage?group_by=model{query}", headers=headers)


@pytest.mark.timeout(300)
def test_usage_matches_predict_time_and_the_runners_lifetime(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _publish(data_dir)
    env = {"VENDO_IDLE_TIMEOUT": "3", "VENDO_USAGE_FLUSH_INTERVAL": "1"}
    server = LiveServer(data_dir, tmp_path / "server.log", ADMIN, env=env)
    server.start()
    try:
        transport = httpx.HTTPTransport()
        client = replicate.Client(api_token=ALICE, base_url=server.url, transport=transport)
        predict_times: list[float] = []
        pid = started = 0.0
        for i in range(N):
            prediction = client.predictions.create(
                model="alice/sleeper", input={"text": f"t{i}", "sleep": SLEEP}, wait=True
            )
            prediction.wait()
            assert prediction.status == "succeeded", prediction.error
            assert prediction.output == f"t{i}"
            assert prediction.metrics["total_time"] >= prediction.metrics["predict_time"] >= SLEEP
            predict_times.append(prediction.metrics["predict_time"])
            if i == 0:
                pid = _runner_pid(server)
                started = _started_since_boot(int(pid))
        transport.close()
        # the idle timeout stops the runner: its end, seen as closely as we can
        until(lambda: not is_running(int(pid)), timeout=60, interval=0.005)
        lifetime = _since_boot() - started
        assert not any(is_running(child) for child in server.children())  # no other runner
    finally:
        server.stop()  # a clean stop writes every metered second
    server.start()  # and the usage is read back from the database
    try:
        body = _usage(server, ALICE).json()
        [group] = body["results"]
        assert group["key"] == "alice/sleeper"
        active = group["active_seconds"]
        setup_idle = group["setup_seconds"] + group["idle_seconds"]
        busy = sum(predict_times)
        assert abs(active - busy) / busy < 0.05, (active, busy)
        assert abs(setup_idle - (lifetime - busy)) / (lifetime - busy) < 0.05, (
            setup_idle,
            lifetime,
            busy,
        )
        assert group["setup_seconds"] > 0 and group["idle_seconds"] > 0
        assert group["cost"] == pytest.approx(group["total_seconds"] * 0.0001, rel=0.01)
        # tenancy: bob cannot see it; the admin can
        assert _usage(server, BOB, "&account=alice").status_code == 404
        assert _usage(server, BOB).json()["results"] == []
        assert _usage(server, ADMIN, "&account=alice").json()["results"] == [group]
        # and `vendo usage` prints it
        cli_env = clean_env(VENDO_URL=server.url, VENDO_API_TOKEN=ALICE)
        done = vendo("usage", "--since", "1d", "--by", "model", cwd=tmp_path, env=cli_env)
        assert done.returncode == 0, done.stderr
        assert "alice/sleeper" in done.stdout and "total" in done.stdout
        assert f"{group['cost']:.6f}" in done.stdout
    finally:
        server.stop()


def _balance(server: LiveServer) -> Any:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    return httpx.get(f"{server.url}/v1/accounts/alice/credit", headers=headers).json()


def test_vendo_credit_set_works_on_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _publish(data_dir)
    env = clean_env()
    done = vendo(
        "credit", "set", "alice", "2.5", "--data-dir", str(data_dir), cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "alice: credit 2.500000" in done.stdout and "2.500000 left" in done.stdout
    shown = vendo("credit", "show", "alice", "--data-dir", str(data_dir), cwd=tmp_path, env=env)
    assert "2.500000 left" in shown.stdout
    for args, message in (
        (["nobody", "1"], "no account named 'nobody'"),
        (["alice", "-1"], "must be from 0"),
        (["alice", "lots"], "must be a number"),
    ):
        # "--": a negative amount is not an option
        args = ["credit", "set", "--data-dir", str(data_dir), "--", *args]
        bad = vendo(*args, cwd=tmp_path, env=env)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr
        assert message in bad.stderr, bad.stderr
    server = LiveServer(data_dir, tmp_path / "server.log", ADMIN)
    server.start()
    try:
        assert _balance(server)["credit"] == 2.5
    finally:
        server.stop()
    done = vendo(
        "credit", "set", "alice", "unlimited", "--data-dir", str(data_dir), cwd=tmp_path, env=env
    )
    assert done.returncode == 0 and "alice: unlimited credit" in done.stdout
