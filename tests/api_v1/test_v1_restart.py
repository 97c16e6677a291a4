"""The restart policy, against a real ``vendo serve`` killed with SIGKILL: a queued
prediction runs after the restart, a running one ends ``failed`` as interrupted (and
its ``completed`` webhook is sent)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_v1_support import LiveServer, publish_models, wait_status

pytestmark = pytest.mark.slow

TOKEN = "restart-token"
INTERRUPTED = "interrupted: the server stopped while this prediction was running"


def _client(server: LiveServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )


def _kill(server: LiveServer) -> None:
    """SIGKILL the server, then the runners it started (by their PIDs), as a crash
    of the whole machine would leave nothing running."""
    orphans = server.children()
    server.stop(signal.SIGKILL)
    for pid in orphans:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_restart_runs_queued_and_fails_interrupted(tmp_path: Path, receiver: Any) -> None:
    data_dir = tmp_path / "data"
    versions = publish_models(data_dir, tmp_path / "packages", {"echo": "api_echo"}, TOKEN)
    server = LiveServer(data_dir, tmp_path / "server.log", TOKEN)
    server.start()
    try:
        with _client(server) as c:
            running = c.post(
                "/v1/predictions",
                json={
                    "version": versions["echo"],
                    "input": {"text": "long", "sleep": 120},
                    "webhook": receiver.url,
                    "webhook_events_filter": ["completed"],
                },
            ).json()
            body = wait_status(c, running["urls"]["get"], {"processing"})
            assert body["status"] == "processing"
            queued = c.post(
                "/v1/predictions", json={"version": versions["echo"], "input": {"text": "next"}}
            ).json()
            assert c.get(queued["urls"]["get"]).json()["status"] == "starting"
            _kill(server)
        server.start()
        with _client(server) as c:
            failed = c.get(running["urls"]["get"]).json()
            assert failed["status"] == "failed" and failed["error"] == INTERRUPTED
            # its completed webhook was owed: the restart sends it
            receiver.wait_for_bodies(
                lambda bodies: any(
                    b["id"] == running["id"] and b["status"] == "failed" for b in bodies
                )
            )
            done = wait_status(c, queued["urls"]["get"], {"succeeded", "failed", "canceled"})
            assert done["status"] == "succeeded" and done["output"] == "next"
    finally:
        server.stop()


def test_a_wait_that_ran_out_is_kept_through_a_kill(tmp_path: Path) -> None:
    # A Prefer: wait prediction starts before it is written (it is written once, at its
    # end); one whose wait runs out is written first, so it is accepted like any other.
    data_dir = tmp_path / "data"
    versions = publish_models(data_dir, tmp_path / "packages", {"echo": "api_echo"}, TOKEN)
    server = LiveServer(data_dir, tmp_path / "server.log", TOKEN)
    server.start()
    try:
        with _client(server) as c:
            warm = c.post(
                "/v1/predictions",
                json={"version": versions["echo"], "input": {"text": "warm"}},
                headers={"Prefer": "wait"},
            ).json()
            assert warm["status"] == "succeeded"
            waited = c.post(
                "/v1/predictions",
                json={"version": versions["echo"], "input": {"text": "long", "sleep": 120}},
                headers={"Prefer": "wait=1"},
            ).json()
            assert waited["status"] == "starting"
            assert c.get(waited["urls"]["get"]).json()["status"] == "processing"
            _kill(server)
        server.start()
        with _client(server) as c:
            failed = c.get(waited["urls"]["get"]).json()
            assert failed["status"] == "failed" and failed["error"] == INTERRUPTED
            assert c.get(warm["urls"]["get"]).json()["output"] == "warm"
    finally:
        server.stop()
