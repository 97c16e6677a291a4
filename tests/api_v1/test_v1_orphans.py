"""Runner children never outlive ``vendo serve``: after a SIGKILL of the server its
runners, and the processes a model started, are gone within seconds (a child in a
long ``setup()`` included)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import httpx
import pytest
from api_v1_support import LiveServer, publish_models

from support import is_running, until, wait_gone

pytestmark = pytest.mark.slow  # publish_models builds a real environment

TOKEN = "orphans-token"


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("phase", ["after a prediction", "during setup"])
def test_runners_and_their_children_die_with_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phase: str
) -> None:
    data_dir = tmp_path / "data"
    versions = publish_models(data_dir, tmp_path / "packages", {"spawner": "plt_grandchild"}, TOKEN)
    if phase == "during setup":
        monkeypatch.setenv("GRANDCHILD_SETUP", "120")
    server = LiveServer(data_dir, tmp_path / "server.log", TOKEN)
    server.start()
    started: list[int] = []
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        ) as client:
            if phase == "during setup":
                client.post("/v1/predictions", json={"version": versions["spawner"], "input": {}})
                until(server.children, timeout=30, what="the runner to start")
            else:
                body = client.post(
                    "/v1/predictions",
                    json={"version": versions["spawner"], "input": {}},
                    headers={"Prefer": "wait"},
                ).json()
                assert body["status"] == "succeeded", body
                started.append(body["output"])  # the model's own child
        started += server.children()
        assert started and all(is_running(pid) for pid in started)
        server.stop(signal.SIGKILL)
        assert wait_gone(started) == []
    finally:
        server.stop()
        kill_all(started)
