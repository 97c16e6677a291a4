"""Scaled mode: a ``vendo serve`` with runners on PostgreSQL heartbeats like an agent.
Two such servers share one database and bucket; the one running a long prediction
stalls (SIGSTOP). The other finds it lost within the timeout, fails that prediction as
interrupted and runs the new ones. The stalled server, resumed, finds itself lost: it
writes nothing more over what the other decided and exits with status 1."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_support import AGENT_FIXTURE, FAST_LIVENESS, scaled_env
from serve_support import serving, vendo
from support import until
from vendo.queue.jobs import LOST_ERROR
from vendo.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]

TOKEN = "liveness-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
NAMES = ["server-1", "server-2"]


class Servers:
    def __init__(self, urls: dict[str, str], procs: dict[str, subprocess.Popen[bytes]]) -> None:
        self.urls, self.procs = urls, procs
        self.version = ""

    def create(self, name: str, **values: Any) -> dict[str, Any]:
        body = {"version": self.version, "input": values}
        r = httpx.post(f"{self.urls[name]}/v1/predictions", json=body, headers=HEADERS, timeout=30)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def get(self, name: str, prediction_id: str) -> dict[str, Any]:
        url = f"{self.urls[name]}/v1/predictions/{prediction_id}"
        r = httpx.get(url, headers=HEADERS, timeout=30)
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture
def servers(tmp_path: Path, pg_only_url: str, s3_bucket: str, s3_server: str) -> Iterator[Servers]:
    shared = scaled_env(
        database=pg_only_url, bucket=s3_bucket, endpoint=s3_server, token=TOKEN, **FAST_LIVENESS
    )
    urls: dict[str, str] = {}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with ExitStack() as stack:
        # one after the other: each start runs the migrations
        for name in NAMES:
            data = tmp_path / name / "data"
            data.parent.mkdir()
            # the model logs "ran on <AGENT_LABEL>": which server ran a prediction
            env = {**shared, "VENDO_DATA_DIR": str(data), "AGENT_LABEL": name}
            procs[name], urls[name] = stack.enter_context(
                serving(tmp_path / name, env, "--port", "0", data_dir=data)
            )
        found = Servers(urls, procs)
        env = {**shared, "VENDO_DATA_DIR": str(tmp_path / NAMES[0] / "data")}
        pushed = vendo("push", str(AGENT_FIXTURE), "admin/echo", "-q", cwd=tmp_path, env=env)
        assert pushed.returncode == 0, pushed.stderr
        model = httpx.get(f"{urls[NAMES[0]]}/v1/models/admin/echo", headers=HEADERS, timeout=30)
        found.version = model.json()["latest_version"]["id"]
        try:
            yield found
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGCONT)  # a stopped process cannot stop


def _runs_on(servers: Servers, prediction_id: str) -> str | None:
    p = servers.get(NAMES[0], prediction_id)
    if p["status"] != "processing":
        return None
    return next((name for name in NAMES if f"ran on {name}" in (p["logs"] or "")), None)


def _registered(url: str) -> list[str]:
    store = Store.open(url, migrate=False)
    try:
        return [row.name for row in store.agents.every()]
    finally:
        store.close()


def test_a_stalled_server_is_found_lost_and_its_running_prediction_fails(
    servers: Servers, pg_only_url: str, tmp_path: Path
) -> None:
    # both servers registered as workers, by host and port
    ports = sorted(url.rsplit(":", 1)[1] for url in servers.urls.values())
    assert sorted(n.rsplit(":", 1)[1] for n in _registered(pg_only_url)) == ports
    slow = servers.create(NAMES[0], text="slow", seconds=600)
    stalled = until(
        lambda: _runs_on(servers, slow["id"]),
        timeout=240,
        what="the slow prediction to run on one of the servers",
    )
    survivor = next(name for name in NAMES if name != stalled)
    os.kill(servers.procs[stalled].pid, signal.SIGSTOP)
    # lost after 3 s without a heartbeat: the survivor fails the prediction
    ended = until(
        lambda: (p := servers.get(survivor, slow["id"]))["status"] == "failed" and p,
        timeout=30,
        what="the stalled server's prediction to fail as interrupted",
    )
    assert ended["error"] == LOST_ERROR
    assert len(_registered(pg_only_url)) == 1
    # new predictions still run, on the survivor
    quick = servers.create(survivor, text="after")
    done = until(
        lambda: (
            (p := servers.get(survivor, quick["id"]))["status"] in ("succeeded", "failed") and p
        ),
        timeout=240,
        what="a new prediction to run on the surviving server",
    )
    assert done["status"] == "succeeded" and f"ran on {survivor}" in done["logs"], done
    # resumed, the stalled server finds itself lost: it stops, writing nothing more
    process = servers.procs[stalled]
    os.kill(process.pid, signal.SIGCONT)
    until(lambda: process.poll() is not None, timeout=60, what="the stalled server to stop")
    assert process.returncode == 1
    log = (tmp_path / stalled / "serve.log").read_text()
    assert "was declared lost" in log and "Traceback" not in log, log
    after = servers.get(survivor, slow["id"])
    assert after["status"] == "failed" and after["error"] == LOST_ERROR
    assert after["completed_at"] == ended["completed_at"]
    assert len(_registered(pg_only_url)) == 1  # it did not come back
