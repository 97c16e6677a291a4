"""The platform's sync path against Cog's own server, same predictor, same run.

Vendo: ``vendo serve`` (the whole platform: auth, validation, store, queue, scheduler,
event bus) with the fixture pushed through ``POST /v1/models/.../versions``; each
request is ``POST /v1/predictions`` with ``Prefer: wait`` on a warm runner, answered
201 with the finished prediction. Cog: Cog 0.23.1's server (coglet, see
cog_server.py) on the same project, ``POST /predictions`` answered 200.

* sequential: ``echo_sync``, one keep-alive connection, warm-up then N requests;
  median/p99 latency of the successful replies;
* throughput: ``echo_async`` (8 slots), C keep-alive clients (default 32) in a
  closed loop with wrk when installed (asyncio client otherwise). Cog answers 409
  when its 8 slots are busy; Vendo queues the extra requests. Successful replies per
  second are the figure, other replies are counted apart.

Run from the repository root (results also go to ``.bench/v1_bench.json``)::

    .venv/bin/python bench/v1_bench.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

# The bench scripts run as files, so their folder is on sys.path.
from cog_server import cog_versions, ensure_cog_venv, start_cog_server
from common import (
    BENCH_DIR,
    REPO_ROOT,
    HttpConnection,
    build_request,
    free_port,
    parse_head,
    percentile,
    stop_process,
)

__all__ = ["main"]

TOKEN = "bench-token"
FIXTURES = REPO_ROOT / "bench" / "fixtures"
BODY = {"text": "hello"}


def start_vendo(data_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VENDO_API_TOKEN": TOKEN,
        "VENDO_IDLE_TIMEOUT": "3600",
        "VENDO_ALLOW_NEAREST_PYTHON": "true",
    }
    env.pop("PYTHONPATH", None)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vendo", "serve", "--port", str(port), "--data-dir",
             str(data_dir)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = HttpConnection("127.0.0.1", port, timeout=2)
            status, _ = conn.request("GET", "/v1/hardware", headers=_auth())
            conn.close()
            if status == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    stop_process(proc)
    raise RuntimeError("vendo serve did not start:\n" + log_path.read_text()[-3000:])


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def push(port: int, fixture: str) -> str:
    """Push a bench fixture through the HTTP route; returns the version id."""
    import httpx

    from vendo.packages import archive_bytes

    r = httpx.post(
        f"http://127.0.0.1:{port}/v1/models/admin/{fixture.replace('_', '-')}/versions",
        content=archive_bytes(FIXTURES / fixture),
        headers={**_auth(), "Content-Type": "application/gzip"},
        timeout=600,
    )
    r.raise_for_status()
    return str(r.json()["id"])


class Target:
    """One server endpoint: the request that runs one prediction and its success code."""

    def __init__(self, name: str, port: int, path: str, body: dict[str, Any], ok: int,
                 headers: dict[str, str]) -> None:  # fmt: skip
        self.name, self.port, self.path, self.ok = name, port, path, ok
        self.body = json.dumps(body).encode()
        self.headers = headers

    @classmethod
    def cog(cls, port: int) -> Target:
        return cls("cog", port, "/predictions", {"input": BODY}, 200, {})

    @classmethod
    def vendo(cls, port: int, version: str) -> Target:
        headers = {**_auth(), "Prefer": "wait=60"}
        return cls("vendo", port, "/v1/predictions", {"version": version, "input": BODY}, 201,
                   headers)  # fmt: skip


def sequential(target: Target, warmup: int, n: int) -> dict[str, Any]:
    conn = HttpConnection("127.0.0.1", target.port)
    statuses: Counter[int] = Counter()
    samples: list[float] = []
    try:
        for _ in range(warmup):
            conn.request("POST", target.path, target.body, target.headers)
        start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            status, reply = conn.request("POST", target.path, target.body, target.headers)
            elapsed = (time.perf_counter() - t0) * 1000
            statuses[status] += 1
            if status == target.ok and json.loads(reply).get("output") == "hello":
                samples.append(elapsed)
        loop_s = time.perf_counter() - start
    finally:
        conn.close()
    if not samples:
        raise RuntimeError(f"{target.name}: no successful replies: {dict(statuses)}")
    return {
        "n": n,
        "median_ms": statistics.median(samples),
        "p99_ms": percentile(samples, 99),
        "ms_per_ok": loop_s * 1000 / len(samples),
        "statuses": dict(statuses),
    }


_WRK = r"""
wrk.method = "POST"
wrk.body = BODY
wrk.headers["Content-Type"] = "application/json"
HEADERS
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  io.write(string.format("RESULT seconds %f\n", summary.duration / 1e6))
  io.write(string.format("RESULT p50 %f\n", latency:percentile(50) / 1e3))
  io.write(string.format("RESULT p99 %f\n", latency:percentile(99) / 1e3))
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do io.write(string.format("STATUS %d %d\n", k, v)) end
  end
end
"""


def _lua(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def load(target: Target, clients: int, seconds: int) -> dict[str, Any]:
    if shutil.which("wrk"):
        return _wrk(target, clients, seconds)
    return asyncio.run(_asyncio_load(target, clients, seconds))


def _summary(target: Target, statuses: dict[int, int], secs: float, p50: Any, p99: Any,
             tool: str, clients: int) -> dict[str, Any]:  # fmt: skip
    ok = statuses.get(target.ok, 0)
    return {
        "tool": tool,
        "clients": clients,
        "seconds": secs,
        "ok_per_s": ok / secs,
        "other": sum(v for k, v in statuses.items() if k != target.ok),
        "statuses": statuses,
        "p50_ms": p50,
        "p99_ms": p99,
    }


def _wrk(target: Target, clients: int, seconds: int) -> dict[str, Any]:
    headers = "\n".join(f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in target.headers.items())
    script = _WRK.replace("BODY", _lua(target.body.decode()), 1).replace("HEADERS", headers, 1)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--timeout", "60s", "-s", fh.name,
             f"http://127.0.0.1:{target.port}{target.path}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(fh.name)
    values: dict[str, float] = {}
    statuses: Counter[int] = Counter()
    for line in out.splitlines():
        parts = line.split()
        if parts[:1] == ["RESULT"]:
            values[parts[1]] = float(parts[2])
        elif parts[:1] == ["STATUS"]:
            statuses[int(parts[1])] += int(parts[2])
    return _summary(target, dict(statuses), values["seconds"], values["p50"], values["p99"],
                    "wrk", clients)  # fmt: skip


async def _asyncio_load(target: Target, clients: int, seconds: int) -> dict[str, Any]:
    request = build_request("POST", target.path, "127.0.0.1", target.port, target.body,
                            target.headers)  # fmt: skip
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
        try:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status, length, chunked = parse_head(head[:-4])
                if chunked:
                    await reader.readuntil(b"\r\n0\r\n\r\n")
                else:
                    await reader.readexactly(length)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    secs = time.perf_counter() - start
    p50 = percentile(latencies, 50) if latencies else None
    p99 = percentile(latencies, 99) if latencies else None
    return _summary(target, dict(statuses), secs, p50, p99, "asyncio", clients)


def one_round(args: argparse.Namespace, vendo_port: int, versions: dict[str, str],
              cog_python: Path) -> dict[str, Any]:  # fmt: skip
    result: dict[str, Any] = {}
    for fixture, kind in (("echo_sync", "sequential"), ("echo_async", "throughput")):
        port = free_port()
        cog = start_cog_server(FIXTURES / fixture, port, {"COG_LOG_LEVEL": "warn"},
                               python=cog_python)  # fmt: skip
        try:
            targets = [Target.cog(port), Target.vendo(vendo_port, versions[fixture])]
            for target in targets:  # warm both (Vendo's runner is already warm)
                sequential(target, 0, 5)
            order = targets if len(result) % 2 == 0 else targets[::-1]
            for target in order:
                if kind == "sequential":
                    figures = sequential(target, args.warmup, args.requests)
                else:
                    figures = load(target, args.clients, args.duration)
                result.setdefault(kind, {})[target.name] = figures
        finally:
            stop_process(cog)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=int, default=8)
    args = parser.parse_args()

    BENCH_DIR.mkdir(exist_ok=True)
    cog_python = ensure_cog_venv()
    work = Path(tempfile.mkdtemp(prefix="v1-bench-", dir=BENCH_DIR))
    port = free_port()
    vendo = start_vendo(work / "data", port, work / "vendo.log")
    rounds = []
    try:
        versions = {name: push(port, name) for name in ("echo_sync", "echo_async")}
        for n in range(args.rounds):
            print(f"round {n + 1}/{args.rounds}", file=sys.stderr, flush=True)
            rounds.append(one_round(args, port, versions, cog_python))
    finally:
        stop_process(vendo)
        shutil.rmtree(work, ignore_errors=True)

    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "cog": cog_versions(cog_python),
        "args": vars(args),
        "rounds": rounds,
    }
    (BENCH_DIR / "v1_bench.json").write_text(json.dumps(report, indent=2))
    print(_markdown(rounds, args))


def _markdown(rounds: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def med(kind: str, server: str, key: str) -> float:
        return statistics.median(r[kind][server][key] for r in rounds)

    lines = [
        f"{len(rounds)} round(s); medians over rounds.",
        "",
        "| measure | Cog 0.23.1 (coglet) | Vendo /v1 (serve) | Vendo/Cog |",
        "|---|---|---|---|",
    ]
    for key, label in (("median_ms", "sequential median ms"), ("p99_ms", "sequential p99 ms"),
                       ("ms_per_ok", "sequential ms per success")):  # fmt: skip
        c, v = med("sequential", "cog", key), med("sequential", "vendo", key)
        lines.append(f"| {label} (echo_sync) | {c:.2f} | {v:.2f} | {v / c:.2f} |")
    c, v = med("throughput", "cog", "ok_per_s"), med("throughput", "vendo", "ok_per_s")
    lines.append(
        f"| successes/s, {args.clients} clients (echo_async, 8 slots) | {c:.0f} | {v:.0f} | "
        f"{v / c:.2f} |"
    )
    c, v = med("throughput", "cog", "other"), med("throughput", "vendo", "other")
    lines.append(f"| other replies (Cog: 409 busy) | {c:.0f} | {v:.0f} | |")
    c, v = med("throughput", "cog", "p99_ms"), med("throughput", "vendo", "p99_ms")
    lines.append(f"| p99 ms under load | {c:.1f} | {v:.1f} | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
