"""Scaled mode across hosts (#15): two API servers and three agents, each in a network
namespace of its own (its own address, its own data dir: nothing shared but the
database and the bucket, which listen in the root namespace). 300 predictions go in
through both servers; one agent is killed with SIGKILL while it runs one. Every
prediction ends exactly once, the surviving agents do the rest, and the SSE stream and
the output files are served by either server."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from streaming_support import sse_events

from agent_support import AGENT_FIXTURE, FAST_LIVENESS, scaled_env, start_agent
from netns_support import Hosts, netns_missing, network
from pg_throwaway import find_bindir, start_throwaway_postgres
from s3_server import AWS_ENV, moto_missing, start_s3_server
from serve_support import vendo
from support import children_of, http_ready, start_server, stop_process, until, wait_gone
from vendo.queue.jobs import LOST_ERROR

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]

TOKEN = "multi-host-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
APIS = ["api-1", "api-2"]
AGENTS = ["agent-1", "agent-2", "agent-3"]
COUNT = 300


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    why = netns_missing() or moto_missing()
    if why is None and find_bindir() is None:
        why = "initdb/pg_ctl are needed for a PostgreSQL the namespaces reach"
    if why is not None:
        pytest.skip(why)
    with network(APIS + AGENTS) as made:
        yield made


@contextmanager
def _services(hosts: Hosts, tmp_path: Path) -> Iterator[dict[str, str]]:
    """PostgreSQL and moto at the bridge's address; the environment every process
    shares."""
    database = start_throwaway_postgres(address=hosts.gateway, trust=hosts.network)
    try:
        s3 = start_s3_server(tmp_path, host=hosts.gateway)
        try:
            import boto3

            client = boto3.client("s3", endpoint_url=s3.endpoint, **_boto_credentials())
            client.create_bucket(Bucket="vendo")
            client.close()
            yield scaled_env(
                database=database.url,
                bucket="s3://vendo/files",
                endpoint=s3.endpoint,
                token=TOKEN,
                **FAST_LIVENESS,
                # the namespaces have no route out: builds use uv's cache and local wheels
                UV_OFFLINE="1",
            )
        finally:
            s3.stop()
    finally:
        database.stop()


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_ENV["AWS_DEFAULT_REGION"],
    }


def _api(hosts: Hosts, name: str, env: dict[str, str], root: Path) -> subprocess.Popen[bytes]:
    url = f"http://{hosts.addresses[name]}:8000"
    data = root / name
    data.mkdir()
    argv = [*hosts.prefix(name), sys.executable, "-m", "vendo", "serve", "--no-runners"]
    return start_server(
        [*argv, "--host", "0.0.0.0", "--port", "8000", "--data-dir", str(data)],
        ready=http_ready(f"{url}/v1/account", HEADERS),
        log_path=root / f"{name}.log",
        env={**env, "VENDO_PUBLIC_URL": url},
        cwd=data,
        timeout=120,
    )


def _kill_9(agent: subprocess.Popen[bytes]) -> None:
    """SIGKILL the agent alone, as a crash would; its runner child follows it (checked)."""
    children = children_of(agent.pid)
    os.kill(agent.pid, signal.SIGKILL)
    agent.wait(30)
    assert wait_gone(children, timeout=30) == []


def _rows(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("select id, status, error, logs from predictions")))


def _count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text(sql)) or 0)


def test_two_api_servers_and_three_agents_survive_a_killed_agent(
    hosts: Hosts, tmp_path: Path
) -> None:
    with _services(hosts, tmp_path) as env, ExitStack() as stack:
        engine = sa.create_engine(
            env["VENDO_DATABASE_URL"].replace("postgresql:", "postgresql+psycopg:")
        )
        stack.callback(engine.dispose)
        apis = {}
        for name in APIS:  # one after the other: each start runs the migrations
            process = _api(hosts, name, env, tmp_path)
            stack.callback(stop_process, process)
            apis[name] = f"http://{hosts.addresses[name]}:8000"
        pushed = vendo(
            "push", str(AGENT_FIXTURE), "admin/echo", "-q", "--url", apis["api-1"],
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stderr
        model = httpx.get(f"{apis['api-2']}/v1/models/admin/echo", headers=HEADERS, timeout=30)
        version = model.json()["latest_version"]["id"]
        agents = {}
        for name in AGENTS:
            agents[name] = start_agent(tmp_path / name, env, name, prefix=hosts.prefix(name))
            stack.callback(stop_process, agents[name])
        created = _submit(list(apis.values()), version)
        assert len(set(created)) == COUNT
        # mid-run: agent-1 has done some and is running one now
        until(
            lambda: _count(
                engine,
                "select count(*) from jobs j join predictions p on p.id = j.prediction_id "
                "where j.claimed_by = 'agent-1' and p.status = 'processing' and "
                "(select count(*) from predictions where logs like '%ran on agent-1%') >= 5",
            ),
            timeout=240,
            what="agent-1 to be running a prediction after a few",
        )
        _kill_9(agents["agent-1"])
        until(
            lambda: (
                _count(engine, "select count(*) from predictions where completed_at is null") == 0
            ),
            timeout=300,
            what="every prediction to end",
        )
        _check_each_ended_once(engine)
        _check_either_server_serves(apis, version)


def _submit(urls: list[str], version: str) -> list[str]:
    """COUNT predictions, alternately through each server, eight at a time."""
    body = {"version": version, "input": {"text": "x", "seconds": 0.05}}
    clients = [httpx.Client(base_url=url, headers=HEADERS, timeout=60) for url in urls]
    turn = itertools.cycle(clients)
    try:

        def create(client: httpx.Client) -> str:
            r = client.post("/v1/predictions", json=body)
            assert r.status_code == 201, r.text
            return str(r.json()["id"])

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(create, [next(turn) for _ in range(COUNT)]))
    finally:
        for client in clients:
            client.close()


def _check_each_ended_once(engine: sa.Engine) -> None:
    rows = _rows(engine)
    assert len(rows) == COUNT
    ran_on: dict[str, int] = {}
    lost = [r for r in rows if r.status == "failed"]
    # the one agent-1 was running when it was killed (a run of one slot)
    assert len(lost) <= 1 and all(r.error == LOST_ERROR for r in lost), lost
    for row in rows:
        if row.status == "failed":
            continue
        assert row.status == "succeeded", row
        lines = [line for line in row.logs.splitlines() if line.startswith("ran on ")]
        assert len(lines) == 1, row  # run once, never again after a requeue
        agent = lines[0].removeprefix("ran on ")
        ran_on[agent] = ran_on.get(agent, 0) + 1
    assert set(ran_on) == set(AGENTS), ran_on
    assert _count(engine, "select count(*) from jobs") == 0
    assert _count(engine, "select count(*) from agents where name = 'agent-1'") == 0


def _check_either_server_serves(apis: dict[str, str], version: str) -> None:
    """A prediction created on one server, streamed live and its file downloaded
    through the other, and the other way round."""
    for made, other in ((apis["api-1"], apis["api-2"]), (apis["api-2"], apis["api-1"])):
        body = {"version": version, "input": {"text": made, "seconds": 1}, "stream": True}
        r = httpx.post(f"{made}/v1/predictions", json=body, headers=HEADERS, timeout=60)
        assert r.status_code == 201, r.text
        stream = r.json()["urls"]["stream"].replace(made, other)
        with httpx.stream("GET", stream, timeout=120) as sse:
            events = [
                e for e in sse_events(sse.iter_lines()) if e.get("event") in ("output", "done")
            ]
        assert [e["event"] for e in events] == ["output", "done"]
        output = events[0]["data"]
        assert output.startswith(other + "/v1/files/")
        for server in (made, other):
            download = httpx.get(output.replace(other, server), timeout=30)
            assert download.status_code == 200 and download.text == made
