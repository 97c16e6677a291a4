"""Cold start of a deployment's instance against the start of Cog's own server, for the
same model, less the model's own setup time.

The ``cold_setup`` fixture's ``setup()`` sleeps (0.5 s) and ``predict()`` returns how
long setup took by the model's own clock. Each round, in alternating order:

* Vendo: a deployment (min 0, max 1) on ``vendo serve`` (idle timeout 1 s) is scaled to
  zero (``vendo_instances`` of its pool reads 0 on ``/metrics``); then one
  ``POST /v1/deployments/admin/cold/predictions`` with ``Prefer: wait`` is timed from
  send to reply. The instance starts, runs setup, and answers: nothing is warm.
* Cog: ``python -m cog.server.http`` (cog 0.23.1 + coglet, bench/cog_server.py) is
  launched, ``/health-check`` polled until READY (every 50 ms, as bench/common.py
  does), then one ``POST /predictions``; timed from launch to that reply.

Overhead = that time minus the setup seconds the model reported. Also measured: a warm
prediction right after (Vendo's deployment route, Cog's ``/predictions``).

Run from the repository root (JSON in ``.bench/deploy_cold_bench.json``)::

    .venv/bin/python bench/deploy_cold_bench.py --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from backlog_bench import HOST, Server, push
from cog_server import cog_versions, ensure_cog_venv, start_cog_server, stop_cog_server
from common import BENCH_DIR, HttpConnection, free_port

__all__ = ["main"]

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "cold_setup"
POOL = "deployment:admin/cold"


def _instances(server: Server) -> float:
    conn = HttpConnection(HOST, server.port, timeout=30)
    try:
        _, body = conn.request("GET", "/metrics", headers={"Authorization": "Bearer bench-token"})
    finally:
        conn.close()
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("vendo_instances{") and f'pool="{POOL}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _timed_post(host: str, port: int, path: str, headers: dict[str, str]) -> tuple[float, Any]:
    conn = HttpConnection(host, port, timeout=120)
    try:
        began = time.perf_counter()
        status, body = conn.request("POST", path, b'{"input": {}}', headers)
        took = time.perf_counter() - began
    finally:
        conn.close()
    reply = json.loads(body)
    if status not in (200, 201) or reply.get("status") != "succeeded":
        raise RuntimeError(f"{path}: {status} {reply}")
    return took, reply


def vendo_round(server: Server) -> dict[str, float]:
    deadline = time.monotonic() + 120
    while _instances(server) != 0:  # scaled to zero by the idle timeout
        if time.monotonic() > deadline:
            raise RuntimeError("the deployment did not scale to zero")
        time.sleep(0.1)
    headers = {"Authorization": "Bearer bench-token", "Prefer": "wait=60"}
    path = "/v1/deployments/admin/cold/predictions"
    cold, reply = _timed_post(HOST, server.port, path, headers)
    warm, _ = _timed_post(HOST, server.port, path, headers)
    setup = float(reply["output"])
    return {"total": cold, "setup": setup, "overhead": cold - setup, "warm": warm}


def _warm_cog(port: int) -> float:
    # coglet frees a slot only after its reply is sent (spec/cog.md §8): a request right
    # behind it may get a 409; the warm figure is the first one accepted.
    for _ in range(100):
        try:
            took, _ = _timed_post(HOST, port, "/predictions", {})
            return took
        except RuntimeError as exc:
            if ": 409 " not in str(exc):
                raise
            time.sleep(0.01)
    raise RuntimeError("Cog's server kept answering 409")


def cog_round(python: Path) -> dict[str, float]:
    port = free_port()
    launched = time.perf_counter()
    proc = start_cog_server(FIXTURE, port, {"COG_LOG_LEVEL": "warn"}, python=python)
    try:
        _, reply = _timed_post(HOST, port, "/predictions", {})
        total = time.perf_counter() - launched
        warm = _warm_cog(port)
    finally:
        stop_cog_server(proc)
    setup = float(reply["output"])
    return {"total": total, "setup": setup, "overhead": total - setup, "warm": warm}


def _start_vendo(work: Path) -> Server:
    log_dir = BENCH_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    server = Server(
        Path(sys.executable), work / "data", None, log_dir, env={"VENDO_IDLE_TIMEOUT": "1"}
    )
    server.start("/v1/account")
    version = push(server, FIXTURE, "cold")
    status, body = server.request(
        "POST",
        "/v1/deployments",
        {"name": "cold", "model": "admin/cold", "version": version, "hardware": "cpu",
         "min_instances": 0, "max_instances": 1},
    )  # fmt: skip
    if status != 201:
        raise RuntimeError(f"deployment: {status} {body}")
    return server


def markdown(rounds: list[dict[str, Any]]) -> str:
    lines = [
        "| round | Vendo cold - setup | Cog start - setup | Vendo/Cog | Vendo warm | Cog warm |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rounds, 1):
        v, c = r["vendo"], r["cog"]
        lines.append(
            f"| {i} | {v['overhead'] * 1000:.0f} ms | {c['overhead'] * 1000:.0f} ms | "
            f"{v['overhead'] / c['overhead']:.2f} | {v['warm'] * 1000:.1f} ms | "
            f"{c['warm'] * 1000:.1f} ms |"
        )

    def med(side: str, key: str) -> float:
        return statistics.median(r[side][key] for r in rounds)

    ratio = statistics.median(r["vendo"]["overhead"] / r["cog"]["overhead"] for r in rounds)
    lines.append(
        f"| **median** | **{med('vendo', 'overhead') * 1000:.0f} ms** | "
        f"**{med('cog', 'overhead') * 1000:.0f} ms** | **{ratio:.2f}** | "
        f"{med('vendo', 'warm') * 1000:.1f} ms | {med('cog', 'warm') * 1000:.1f} ms |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    python = ensure_cog_venv()
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vendo-cold-") as tmp:
        server = _start_vendo(Path(tmp))
        try:
            for i in range(args.rounds):
                first, second = ("vendo", "cog") if i % 2 == 0 else ("cog", "vendo")
                result: dict[str, Any] = {"load": os.getloadavg()[0]}
                for side in (first, second):
                    result[side] = vendo_round(server) if side == "vendo" else cog_round(python)
                rounds.append(result)
                print(json.dumps(result), file=sys.stderr, flush=True)
        finally:
            server.stop()
    out = BENCH_DIR / "deploy_cold_bench.json"
    out.write_text(json.dumps({"cog": cog_versions(python), "rounds": rounds}, indent=2))
    print(markdown(rounds))


if __name__ == "__main__":
    main()
