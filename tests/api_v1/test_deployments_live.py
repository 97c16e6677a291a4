"""Deployments on the real scheduler and real runner children, served on a socket: the
official ``replicate`` client (1.0.7) creates, reads, updates and predicts through one;
the autoscaler scales a deployment out to ``max_instances`` under load and back to
``min_instances`` after the idle timeout; a release change under load runs every
prediction exactly once; a ``kill -9`` of ``vendo serve`` loses none of a deployment's
queued predictions.

The model (tests/fixtures/dep_sleep) runs in this interpreter (no environment build):
each version sets ``DEP_RELEASE``, and the model says which release and which instance
(pid) ran each prediction.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_v1_support import LiveServer, record_sleeper

from support import serve_in_thread, until
from vendo.app import create_app
from vendo.config import Settings

replicate = pytest.importorskip("replicate")

TOKEN = "deploy-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
IDLE_TIMEOUT = 1.0  # seconds: scale-down is observed, not waited out


@dataclass
class Served:
    url: str
    versions: dict[str, str]  # release letter -> version id
    http: httpx.Client


@contextmanager
def serving(tmp_path: Path, **settings: Any) -> Iterator[Served]:
    """The app with the real scheduler on a loopback socket, ``admin/sleeper`` recorded."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    versions = record_sleeper(data_dir, TOKEN)
    config = Settings(
        data_dir=data_dir, api_token=TOKEN, idle_timeout=IDLE_TIMEOUT, _env_file=None, **settings
    )
    with (
        serve_in_thread(create_app(config)) as url,
        httpx.Client(base_url=url, headers=AUTH, timeout=30) as http,
    ):
        yield Served(url, versions, http)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path) as served:
        yield served


def _deploy(
    served: Served, name: str, version: str, hardware: str = "cpu", **scale: int
) -> dict[str, Any]:
    body = {"name": name, "model": "admin/sleeper", "version": version, "hardware": hardware}
    body.update({"min_instances": 0, "max_instances": 1} | scale)
    r = served.http.post("/v1/deployments", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _predict(served: Served, deployment: str, text: str, sleep: float = 0) -> str:
    r = served.http.post(
        f"/v1/deployments/{deployment}/predictions",
        json={"input": {"text": text, "sleep": sleep}},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _all_ended(served: Served, ids: list[str], timeout: float = 90) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def ended() -> bool:
        for pid in ids:
            if pid not in found:
                body = served.http.get(f"/v1/predictions/{pid}").json()
                if body["status"] in ("succeeded", "failed", "canceled"):
                    found[pid] = body
        return len(found) == len(ids)

    until(ended, timeout=timeout, what=lambda: f"{len(ids) - len(found)} predictions to end")
    return [found[pid] for pid in ids]


def _metric(served: Served, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    text = served.http.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


@pytest.fixture
def client(served: Served) -> Iterator[Any]:
    # a transport of ours: the client never closes its connections itself
    with httpx.HTTPTransport() as transport:
        yield replicate.Client(api_token=TOKEN, base_url=served.url, transport=transport)


def test_official_client_creates_gets_updates_and_predicts(served: Served, client: Any) -> None:
    a, b = served.versions["a"], served.versions["b"]
    made = client.deployments.create(
        name="prod", model="admin/sleeper", version=a, hardware="cpu",
        min_instances=0, max_instances=1,
    )  # fmt: skip
    assert made.owner == "admin" and made.name == "prod"
    assert made.current_release is not None and made.current_release.number == 1
    got = client.deployments.get("admin/prod")
    assert got.current_release is not None and got.current_release.version == a
    assert got.current_release.configuration.max_instances == 1
    first = got.predictions.create(input={"text": "one"})
    first.wait()
    assert first.status == "succeeded" and first.output == "one@a", (first.error, first.logs)
    via_namespace = client.deployments.predictions.create(
        deployment="admin/prod", input={"text": "two"}
    )
    via_namespace.wait()
    assert via_namespace.output == "two@a"
    raw = served.http.get(f"/v1/predictions/{via_namespace.id}").json()
    assert raw["deployment"] == "admin/prod"
    updated = client.deployments.update("admin", "prod", version=b, max_instances=2)
    assert updated.current_release is not None and updated.current_release.number == 2
    assert updated.current_release.version == b
    assert updated.current_release.configuration.max_instances == 2
    after = client.deployments.predictions.create(deployment="admin/prod", input={"text": "3"})
    after.wait()
    assert after.output == "3@b"
    assert [d.name for d in client.deployments.list().results] == ["prod"]


def _overlap(rows: list[dict[str, Any]]) -> int:
    """The most predictions that were running at one moment."""
    edges = []
    for row in rows:
        edges.append((datetime.fromisoformat(row["started_at"]), 1))
        edges.append((datetime.fromisoformat(row["completed_at"]), -1))
    most = running = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        running += step
        most = max(most, running)
    return most


def test_autoscaler_scales_out_to_max_and_back_to_min(served: Served) -> None:
    _deploy(served, "auto", served.versions["a"], max_instances=3)
    pool = "deployment:admin/auto"
    ids = [_predict(served, "admin/auto", f"p{i}", sleep=2) for i in range(9)]
    seen = {"most": 0.0}

    def instances() -> float:
        count = _metric(served, "vendo_instances", pool=pool)
        seen["most"] = max(seen["most"], count)
        return count

    until(lambda: instances() >= 3, timeout=60, what="3 instances")
    rows = _all_ended(served, ids)
    assert [r["status"] for r in rows] == ["succeeded"] * 9
    assert seen["most"] == 3  # never more than max_instances
    pids = {re.search(r"in pid (\d+)", r["logs"]).group(1) for r in rows}  # type: ignore[union-attr]
    assert len(pids) == 3  # three instances shared the work...
    assert _overlap(rows) == 3  # ...at the same time (one instance would run one at once)
    assert _metric(served, "vendo_predictions_total", pool=pool, status="succeeded") == 9
    # scale in: to min_instances after the idle timeout
    r = served.http.patch("/v1/deployments/admin/auto", json={"min_instances": 1})
    assert r.json()["current_release"]["number"] == 2
    until(lambda: instances() == 1, timeout=30, what="1 instance (min_instances)")
    served.http.patch("/v1/deployments/admin/auto", json={"min_instances": 0})
    until(lambda: instances() == 0, timeout=30, what="no instance (scaled to zero)")


def test_release_change_under_load_runs_each_prediction_once(served: Served) -> None:
    a, b = served.versions["a"], served.versions["b"]
    _deploy(served, "roll", a, max_instances=1)
    ids = [_predict(served, "admin/roll", "busy", sleep=1)]
    ids += [_predict(served, "admin/roll", f"q{i}", sleep=0.05) for i in range(20)]
    r = served.http.patch("/v1/deployments/admin/roll", json={"version": b})
    assert r.status_code == 200 and r.json()["current_release"]["version"] == b
    rows = _all_ended(served, ids)
    assert [r["status"] for r in rows] == ["succeeded"] * 21
    for row in rows:
        assert row["logs"].count("ran ") == 1, row["logs"]  # ran once, on one instance
        release = row["output"].rpartition("@")[2]
        assert row["version"] == served.versions[release]  # recorded as what ran it
    assert rows[-1]["output"] == "q19@b"  # the queue went to the new release
    pool = "deployment:admin/roll"
    assert _metric(served, "vendo_predictions_total", pool=pool) == 21
    assert _metric(served, "vendo_queue_depth", pool=pool) == 0


def test_kill_9_loses_no_queued_deployment_prediction(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    versions = record_sleeper(data_dir, TOKEN)
    live = LiveServer(data_dir, tmp_path / "server.log", TOKEN)
    live.start()
    try:
        with httpx.Client(base_url=live.url, headers=AUTH, timeout=30) as http:
            served = Served(live.url, versions, http)
            _deploy(served, "durable", versions["a"], max_instances=1)
            running = _predict(served, "admin/durable", "running", sleep=60)
            queued = [_predict(served, "admin/durable", f"q{i}") for i in range(5)]
            until(
                lambda: http.get(f"/v1/predictions/{running}").json()["status"] == "processing",
                timeout=60,
                what="the first prediction to run",
            )
            live.stop(sig=signal.SIGKILL)
            live.start()
            rows = _all_ended(served, [running, *queued])
    finally:
        live.stop()
    first, rest = rows[0], rows[1:]
    assert first["status"] == "failed" and "interrupted" in first["error"]
    assert [r["status"] for r in rest] == ["succeeded"] * 5
    assert [r["output"] for r in rest] == [f"q{i}@a" for i in range(5)]


def _hardware_file(tmp_path: Path) -> Path:
    cores = len(os.sched_getaffinity(0))
    path = tmp_path / "hardware.toml"
    path.write_text(
        "[[hardware]]\nsku = 'small'\ncpus = 1\nmemory_gb = 2\nprice_per_second = 0.0001\n"
        f"[[hardware]]\nsku = 'whole'\ncpus = {cores}\nmemory_gb = 2\n"
        "price_per_second = 0.0002\n"
        "[[hardware]]\nsku = 'gpu-one'\ncpus = 1\nmemory_gb = 2\ngpus = 1\n"
        "price_per_second = 0.001\n"
    )
    return path


def test_instances_get_their_skus_share(tmp_path: Path) -> None:
    hardware = _hardware_file(tmp_path)
    with serving(tmp_path, hardware_file=hardware, gpu_as_cpu=True) as served:
        _deploy(served, "small", served.versions["a"], hardware="small")
        _deploy(served, "gpu", served.versions["a"], hardware="gpu-one")
        rows = _all_ended(
            served, [_predict(served, "admin/small", "s"), _predict(served, "admin/gpu", "g")]
        )
    small, gpu = (re.search(r"cores (\S+) memory (\d+) gpus (\S+)", r["logs"]) for r in rows)
    assert small is not None and gpu is not None
    assert len(small.group(1).split(",")) == 1  # one core of its own
    assert int(small.group(2)) == 2 * 1024**3  # its memory limit
    # a GPU SKU on a machine without GPUs (VENDO_GPU_AS_CPU) runs on the CPU
    assert rows[1]["status"] == "succeeded"


def test_no_capacity_leaves_predictions_queued(tmp_path: Path) -> None:
    hardware = _hardware_file(tmp_path)
    with serving(tmp_path, hardware_file=hardware, strict_placement=True) as served:
        _deploy(served, "whole", served.versions["a"], hardware="whole", max_instances=2)
        pool = "deployment:admin/whole"
        ids = [_predict(served, "admin/whole", f"w{i}", sleep=1) for i in range(3)]
        until(
            lambda: _metric(served, "vendo_instances_unplaced", pool=pool) == 1,
            timeout=60,
            what="the second instance to be reported unplaced",
        )
        rows = _all_ended(served, ids)
        most = _metric(served, "vendo_instances", pool=pool)
    assert [r["status"] for r in rows] == ["succeeded"] * 3  # waited, never failed
    pids = {re.search(r"in pid (\d+)", r["logs"]).group(1) for r in rows}  # type: ignore[union-attr]
    assert len(pids) == 1 and most <= 1  # the machine held one instance of it
