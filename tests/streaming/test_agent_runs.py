"""``vendo agent`` (#15): an API-only server takes the requests, agents run the models
with their own data dirs: the package from the bucket, the environment built on the
agent, input files through the bucket, events back through the database. An agent
killed mid-run has its running work failed as interrupted and its queued work run by
another."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from streaming_support import sse_events

from agent_support import AGENT_FIXTURE, FAST_LIVENESS, agent_log, scaled_env, start_agent
from pg_throwaway import find_bindir, start_throwaway_postgres
from serve_support import serving, vendo
from support import stop_process, until
from vendo.queue import Queue
from vendo.queue.jobs import LOST_ERROR
from vendo.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]

TOKEN = "agent-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Setup:
    api: str
    version: str
    env: dict[str, str]
    root: Path

    def create(self, **values: Any) -> dict[str, Any]:
        body = {"version": self.version, "input": values, "stream": True}
        r = httpx.post(f"{self.api}/v1/predictions", json=body, headers=HEADERS, timeout=30)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def get(self, prediction_id: str) -> dict[str, Any]:
        r = httpx.get(f"{self.api}/v1/predictions/{prediction_id}", headers=HEADERS, timeout=30)
        assert r.status_code == 200, r.text
        return dict(r.json())


@contextmanager
def api_only(tmp_path: Path, database: str, bucket: str, endpoint: str) -> Iterator[Setup]:
    """An API-only server with the agent fixture pushed to it (built there, as a push
    is, and kept in the bucket)."""
    env = scaled_env(
        database=database,
        bucket=bucket,
        endpoint=endpoint,
        token=TOKEN,
        **FAST_LIVENESS,
        # GPU SKUs offered and placed on this CPU machine: an agent may serve one
        VENDO_GPU_AS_CPU="1",
    )
    data = tmp_path / "api"
    (tmp_path / "a").mkdir()
    api_env = {**env, "VENDO_DATA_DIR": str(data)}
    with serving(tmp_path / "a", api_env, "--port", "0", "--no-runners", data_dir=data) as (_, url):
        pushed = vendo("push", str(AGENT_FIXTURE), "admin/echo", "-q", cwd=tmp_path, env=api_env)
        assert pushed.returncode == 0, pushed.stderr
        model = httpx.get(f"{url}/v1/models/admin/echo", headers=HEADERS, timeout=30)
        yield Setup(url, model.json()["latest_version"]["id"], env, tmp_path)


@pytest.fixture
def setup(tmp_path: Path, pg_only_url: str, s3_bucket: str, s3_server: str) -> Iterator[Setup]:
    with api_only(tmp_path, pg_only_url, s3_bucket, s3_server) as found:
        yield found


def _data_uri(text: str) -> str:
    return "data:text/plain;base64," + base64.b64encode(text.encode()).decode()


def test_an_agent_runs_what_the_api_server_takes_files_and_secrets_too(
    setup: Setup, pg_only_url: str
) -> None:
    """A file input goes through the bucket and a ``cog.Secret`` input sealed by the
    API server (``VENDO_SECRETS_KEY``, the same on both) is opened on the agent."""
    agent = start_agent(setup.root / "agent-1", setup.env, "agent-1")
    try:
        created = setup.create(text="hello ", file=_data_uri("from a file"), token=" s3cr3t")
        assert created["input"]["token"] == "**********"
        with httpx.stream("GET", created["urls"]["stream"], timeout=120) as r:
            events = [e for e in sse_events(r.iter_lines()) if e.get("event") in ("output", "done")]
        assert [e["event"] for e in events] == ["output", "done"]
        done = setup.get(created["id"])
        assert done["status"] == "succeeded", done
        assert "ran on agent-1" in done["logs"]
        download = httpx.get(done["output"], timeout=30)
        assert download.status_code == 200 and download.text == "hello from a file s3cr3t"
        # the agent built the environment and unpacked the package in its own data dir
        assert any((setup.root / "agent-1" / "packages").iterdir())
        assert any((setup.root / "agent-1" / "envs").iterdir())
        # the input went through the bucket: nothing is left in either data dir
        assert not any((setup.root / "api" / "inputs").glob("*/*"))
        assert not any((setup.root / "agent-1" / "inputs").glob("*/*"))
        store = Store.open(pg_only_url, migrate=False)
        try:
            (row,) = store.agents.every()
            assert row.name == "agent-1" and "cpu" in row.hardware
            # the secret was never stored in clear, not even alongside the file's marker
            stored = store.predictions.get(created["id"])
            assert stored is not None and "s3cr3t" not in json.dumps(stored.run_input)
        finally:
            store.close()
    finally:
        stop_process(agent)
    store = Store.open(pg_only_url, migrate=False)
    try:
        assert store.agents.every() == []  # a clean stop leaves the table
    finally:
        store.close()


def _kill_9(agent: subprocess.Popen[bytes]) -> None:
    """SIGKILL the agent alone; its runner children go with their lifeline."""
    os.kill(agent.pid, signal.SIGKILL)
    agent.wait(30)


def test_a_killed_agents_running_work_fails_and_its_queue_moves_on(setup: Setup) -> None:
    first = start_agent(setup.root / "agent-1", setup.env, "agent-1")
    second = None
    try:
        running = setup.create(text="slow", seconds=600)
        until(
            lambda: setup.get(running["id"])["status"] == "processing",
            timeout=120,
            what="the slow prediction to run on agent-1",
        )
        waiting = [setup.create(text=f"q{n}") for n in range(3)]
        _kill_9(first)
        # lost after the timeout: the API server's watch fails the running prediction
        ended = until(
            lambda: (p := setup.get(running["id"]))["status"] == "failed" and p,
            timeout=60,
            what="the killed agent's prediction to fail as interrupted",
        )
        assert ended["error"] == LOST_ERROR
        second = start_agent(setup.root / "agent-2", setup.env, "agent-2")
        for item in waiting:
            done = until(
                lambda item=item: (
                    (p := setup.get(item["id"]))["status"] in ("succeeded", "failed") and p
                ),
                timeout=120,
                what="a queued prediction to run on agent-2",
            )
            assert done["status"] == "succeeded" and "ran on agent-2" in done["logs"], done
    finally:
        stop_process(first)
        stop_process(second)
        for log in (agent_log(setup.root / "agent-1"), agent_log(setup.root / "agent-2")):
            assert "Traceback" not in (log.read_text() if log.exists() else "")


def test_a_cancel_flagged_in_the_database_reaches_the_agent(setup: Setup, pg_only_url: str) -> None:
    """A cancel whose relayed message never reached the agent (here none is sent at
    all): the flag on its job is enough."""
    agent = start_agent(setup.root / "agent-1", setup.env, "agent-1")
    store = Store.open(pg_only_url, migrate=False)
    try:
        running = setup.create(text="slow", seconds=600)
        until(
            lambda: setup.get(running["id"])["status"] == "processing",
            timeout=120,
            what="the slow prediction to run on agent-1",
        )
        assert Queue(store).request_cancel(running["id"]) is True
        until(
            lambda: setup.get(running["id"])["status"] == "canceled",
            timeout=60,
            what="the agent to find the cancel in the database",
        )
    finally:
        store.close()
        stop_process(agent)


def test_an_agent_claims_only_the_hardware_it_serves(setup: Setup, pg_only_url: str) -> None:
    model = {"owner": "admin", "name": "gpu-echo", "visibility": "public", "hardware": "gpu-t4"}
    r = httpx.post(f"{setup.api}/v1/models", json=model, headers=HEADERS, timeout=30)
    assert r.status_code == 201, r.text
    env = {**setup.env, "VENDO_DATA_DIR": str(setup.root / "api")}
    pushed = vendo("push", str(AGENT_FIXTURE), "admin/gpu-echo", "-q", cwd=setup.root, env=env)
    assert pushed.returncode == 0, pushed.stderr
    found = httpx.get(f"{setup.api}/v1/models/admin/gpu-echo", headers=HEADERS, timeout=30)
    gpu_version = found.json()["latest_version"]["id"]
    cpu = start_agent(setup.root / "agent-cpu", setup.env, "agent-cpu", "--hardware", "cpu")
    gpu = None
    store = Store.open(pg_only_url, migrate=False)
    try:
        body = {"version": gpu_version, "input": {"text": "on a GPU"}}
        r = httpx.post(f"{setup.api}/v1/predictions", json=body, headers=HEADERS, timeout=30)
        assert r.status_code == 201, r.text
        on_gpu = r.json()["id"]
        on_cpu = setup.create(text="on a CPU")
        done = until(
            lambda: (p := setup.get(on_cpu["id"]))["status"] == "succeeded" and p,
            timeout=120,
            what="the CPU model to run on the CPU agent",
        )
        assert "ran on agent-cpu" in done["logs"]
        # the GPU model's job is still waiting, claimed by no one
        job = store.predictions.job(on_gpu)
        assert job is not None and job.state == "queued" and job.claimed_by is None
        assert setup.get(on_gpu)["status"] == "starting"
        gpu = start_agent(setup.root / "agent-gpu", setup.env, "agent-gpu", "--hardware", "gpu-t4")
        done = until(
            lambda: (p := setup.get(on_gpu))["status"] == "succeeded" and p,
            timeout=120,
            what="the GPU model to run on the GPU agent",
        )
        assert "ran on agent-gpu" in done["logs"]
        hardware = {a.name: a.hardware for a in store.agents.every()}
        assert hardware == {"agent-cpu": ["cpu"], "agent-gpu": ["gpu-t4"]}
    finally:
        store.close()
        stop_process(cpu)
        stop_process(gpu)


def test_an_agent_survives_a_database_restart(
    tmp_path: Path, s3_bucket: str, s3_server: str
) -> None:
    """A restart of PostgreSQL cuts every connection: the agent reconnects (its claims,
    heartbeats and relay) and runs what is created afterwards; it is not declared lost
    (the restart is shorter than the lost timeout)."""
    bindir = find_bindir()
    if bindir is None:
        pytest.fail("initdb/pg_ctl are needed to restart a throwaway PostgreSQL")
    database = start_throwaway_postgres(bindir)
    try:
        with api_only(tmp_path, database.url, s3_bucket, s3_server) as setup:
            env = {**setup.env, "VENDO_AGENT_LOST_TIMEOUT": "30"}
            agent = start_agent(setup.root / "agent-1", env, "agent-1")
            try:
                before = setup.create(text="before")
                until(lambda: setup.get(before["id"])["status"] == "succeeded", timeout=120,
                      what="a prediction before the restart")  # fmt: skip
                database.restart()
                after = until(
                    lambda: _created_when_back(setup), timeout=60, what="the API server back"
                )
                done = until(
                    lambda: (p := setup.get(after["id"]))["status"] == "succeeded" and p,
                    timeout=120,
                    what="the agent to run a prediction created after the restart",
                )
                assert "ran on agent-1" in done["logs"]
                assert agent.poll() is None  # not declared lost: still running
            finally:
                stop_process(agent)
    finally:
        database.stop()


def _created_when_back(setup: Setup) -> dict[str, Any] | None:
    try:
        return setup.create(text="after")
    except (AssertionError, httpx.TransportError):
        return None  # the server's pool is reconnecting
