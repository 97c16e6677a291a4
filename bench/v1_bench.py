"""The platform's sync path (``POST /v1/predictions``, ``Prefer: wait``) against Cog's own
server on the same predictor, side by side in the same run.

Vendo: one ``vendo serve`` for the whole run (the whole platform: auth, input
validation, store, durable queue, scheduler, event bus), the fixtures pushed through
``POST /v1/models/admin/<name>/versions`` and each runner warmed by a first
prediction. Each measured request is ``POST /v1/predictions`` with
``{"version": <id>, "input": {...}}`` and ``Prefer: wait`` (the official clients' sync
path), expected to come back 201 with ``"status":"succeeded"``. Cog: Cog 0.23.1's
server (coglet, see cog_server.py) on the same project, ``POST /predictions``,
expected 200 ``succeeded``. Each round starts fresh Cog servers; both servers stay up
side by side, and the work is split into blocks measured in alternating order (Cog,
Vendo, Vendo, Cog, ...) so that load from elsewhere on the machine hits both:

* sequential: ``echo_sync`` (one slot), one keep-alive connection per server,
  warm-up then N back-to-back requests; median and p99 over the successful
  replies. coglet frees its slot only after replying, so it answers part of
  back-to-back requests 409; "ms per success" (loop time / successes) is what a
  client that retries at once pays. Vendo queues instead of refusing.
* throughput: ``v1_echo_async32`` (an async predictor with 32 slots, one per
  client, so neither server refuses or queues for lack of slots), C keep-alive
  clients (default 32) in a closed loop with wrk (asyncio client otherwise) for a
  fixed time per server; the figure is successful predictions per second.
* CPU: user + system seconds of each server's process tree while it was measured,
  per successful prediction; the JSON splits it into the server process and its
  descendants (model workers).

Ratios are Vendo/Cog per round; the summary is their median. The load average
(1 min) is taken at the start and the end of each round.

Run from the repository root (JSON in ``.bench/v1_bench.json``)::

    .venv/bin/python bench/v1_bench.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

# The bench scripts run as files, so their folder is on sys.path.
from cog_server import cog_versions, ensure_cog_venv, start_cog_server
from common import (
    BENCH_DIR,
    REPO_ROOT,
    HttpConnection,
    ThroughputResult,
    free_port,
    merge_throughput,
    percentile,
    stop_process,
    throughput,
    tree_cpu_seconds,
)
from serve_model_bench import vendo_snapshot

__all__ = ["main"]

HOST = "127.0.0.1"
TOKEN = "bench-token"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SYNC_FIXTURE = "echo_sync"
ASYNC_FIXTURE = "v1_echo_async32"
INPUT = {"text": "hello"}
SUCCEEDED = b'"status":"succeeded"'


# --- the servers ------------------------------------------------------------------------


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def start_vendo(
    python: Path, data_dir: Path, port: int, log_path: Path, src: Path | None
) -> subprocess.Popen[bytes]:
    """``vendo serve`` on a fresh data dir; returns once ``/v1/account`` answers."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(
        VENDO_API_TOKEN=TOKEN,
        # The runners must stay warm for the whole run.
        VENDO_IDLE_TIMEOUT="3600",
        VENDO_ALLOW_NEAREST_PYTHON="true",
    )
    if src is not None:
        env["PYTHONPATH"] = str(src)  # ahead of the editable install: the snapshot
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(python), "-m", "vendo", "serve", "--host", HOST, "--port", str(port),
             "--data-dir", str(data_dir)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            conn = HttpConnection(HOST, port, timeout=2)
            try:
                status, _ = conn.request("GET", "/v1/account", headers=_auth())
            finally:
                conn.close()
            if status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    stop_process(proc)
    raise RuntimeError("vendo serve did not start:\n" + log_path.read_text()[-3000:])


def push(port: int, fixture: str) -> str:
    """Push a bench fixture through the HTTP route; returns the version id."""
    import httpx

    from vendo.packages import archive_bytes

    reply = httpx.post(
        f"http://{HOST}:{port}/v1/models/admin/{fixture.replace('_', '-')}/versions",
        content=archive_bytes(FIXTURES / fixture),
        headers={**_auth(), "Content-Type": "application/gzip"},
        timeout=900,
    )
    reply.raise_for_status()
    return str(reply.json()["id"])


class Target:
    """One server endpoint: the request that runs one prediction, and its success code."""

    def __init__(
        self, name: str, pid: int, port: int, path: str, body: dict[str, Any], ok: int,
        headers: dict[str, str],
    ) -> None:  # fmt: skip
        self.name, self.pid, self.port, self.path, self.ok = name, pid, port, path, ok
        self.body = json.dumps(body).encode()
        self.headers = headers

    @classmethod
    def cog(cls, proc: subprocess.Popen[bytes], port: int) -> Target:
        return cls("cog", proc.pid, port, "/predictions", {"input": INPUT}, 200, {})

    @classmethod
    def vendo(cls, proc: subprocess.Popen[bytes], port: int, version: str) -> Target:
        body = {"version": version, "input": INPUT}
        headers = {**_auth(), "Prefer": "wait"}
        return cls("vendo", proc.pid, port, "/v1/predictions", body, 201, headers)

    def succeeded(self, status: int, reply: bytes) -> bool:
        return status == self.ok and SUCCEEDED in reply and b'"output":"hello"' in reply

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far: (the server process, its descendants: model workers)."""
        own = rest = 0.0
        for key, seconds in tree_cpu_seconds(self.pid).items():
            if key.split()[0] == str(self.pid):
                own += seconds
            else:
                rest += seconds
        return own, rest


def warm_vendo(target: Target, timeout: float = 900.0) -> float:
    """Run predictions until one succeeds within its wait (the runner's cold start can
    outlast one ``Prefer: wait``); returns the seconds that took."""
    start = time.monotonic()
    conn = HttpConnection(HOST, target.port, timeout=120)
    try:
        while time.monotonic() - start < timeout:
            status, reply = conn.request("POST", target.path, target.body, target.headers)
            if target.succeeded(status, reply):
                return time.monotonic() - start
            if status >= 400:
                raise RuntimeError(f"vendo: {status} {reply[:500]!r}")
            time.sleep(1)
    finally:
        conn.close()
    raise RuntimeError("vendo: the runner did not warm up")


# --- measurements -----------------------------------------------------------------------


class Sequential:
    """Back-to-back requests on one keep-alive connection, measured in blocks."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.conn = HttpConnection(HOST, target.port, timeout=120)
        self.samples: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.failed = 0  # ok status without a succeeded prediction in the body
        self.loop_s = 0.0
        self.cpu_s = (0.0, 0.0)

    def warm(self, n: int) -> None:
        t = self.target
        for _ in range(n):
            self.conn.request("POST", t.path, t.body, t.headers)

    def run(self, n: int) -> None:
        t, conn = self.target, self.conn
        cpu_before = t.cpu()
        loop_start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            status, reply = conn.request("POST", t.path, t.body, t.headers)
            elapsed = time.perf_counter() - t0
            self.statuses[status] += 1
            if t.succeeded(status, reply):
                self.samples.append(elapsed * 1000)
            elif status == t.ok:
                self.failed += 1
        self.loop_s += time.perf_counter() - loop_start
        self.cpu_s = _add(self.cpu_s, _sub(t.cpu(), cpu_before))

    def close(self) -> None:
        self.conn.close()

    def result(self) -> dict[str, Any]:
        if not self.samples:
            raise RuntimeError(f"{self.target.name}: no successes: {dict(self.statuses)}")
        ok = len(self.samples)
        return {
            "n": sum(self.statuses.values()),
            "successes": ok,
            "median_ms": statistics.median(self.samples),
            "p99_ms": percentile(self.samples, 99),
            "mean_ms": statistics.fmean(self.samples),
            "ms_per_success": self.loop_s * 1000 / ok,
            "statuses": dict(self.statuses),
            "ok_status_not_succeeded": self.failed,
            "cpu_ms_per_success": sum(self.cpu_s) * 1000 / ok,  # ok > 0: checked above
            "cpu_ms_per_success_server": self.cpu_s[0] * 1000 / ok,
            "cpu_ms_per_success_workers": self.cpu_s[1] * 1000 / ok,
        }


def _add(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return a[0] + b[0], a[1] + b[1]


def _sub(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return a[0] - b[0], a[1] - b[1]


def load_window(target: Target, args: argparse.Namespace, seconds: float) -> ThroughputResult:
    return throughput(
        HOST, target.port, target.path, target.body, args.clients, seconds, args.client,
        headers=target.headers,
    )  # fmt: skip


def throughput_summary(parts: list[ThroughputResult], cpu_s: tuple[float, float]) -> dict[str, Any]:
    merged = merge_throughput(parts)
    # no success at all: no cost per success (NaN keeps it out of the ratios' medians)
    ok = merged.succeeded or math.nan
    return asdict(merged) | {
        "successes_per_s": merged.succeeded / merged.seconds,
        "not_succeeded": merged.total - merged.succeeded,
        "cpu_ms_per_success": sum(cpu_s) * 1000 / ok,
        "cpu_ms_per_success_server": cpu_s[0] * 1000 / ok,
        "cpu_ms_per_success_workers": cpu_s[1] * 1000 / ok,
    }


def order(targets: list[Target], block: int) -> list[Target]:
    """A, B then B, A: drift during a round hits both alike."""
    return targets if block % 2 == 0 else targets[::-1]


def measure_round(
    args: argparse.Namespace, cog_python: Path, vendo: subprocess.Popen[bytes], vendo_port: int,
    versions: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    result: dict[str, Any] = {"load_avg_1m_start": os.getloadavg()[0]}
    # Sequential, on the one-slot predictor.
    cog_port = free_port()
    cog = start_cog_server(FIXTURES / SYNC_FIXTURE, cog_port, {"COG_LOG_LEVEL": "warn"},
                           python=cog_python)  # fmt: skip
    samplers: list[Sequential] = []
    try:
        targets = [Target.cog(cog, cog_port), Target.vendo(vendo, vendo_port,
                                                           versions[SYNC_FIXTURE])]  # fmt: skip
        samplers = [Sequential(t) for t in targets]
        for sampler in samplers:
            sampler.warm(args.warmup)
        per_block = max(1, args.requests // args.blocks)
        for block in range(args.blocks):
            for sampler in order(samplers, block):
                sampler.run(per_block)
        result["sequential"] = {s.target.name: s.result() for s in samplers}
    finally:
        for sampler in samplers:
            sampler.close()
        stop_process(cog)
    # Throughput, on the 32-slot async predictor.
    cog_port = free_port()
    cog = start_cog_server(FIXTURES / ASYNC_FIXTURE, cog_port, {"COG_LOG_LEVEL": "warn"},
                           python=cog_python)  # fmt: skip
    try:
        targets = [Target.cog(cog, cog_port), Target.vendo(vendo, vendo_port,
                                                           versions[ASYNC_FIXTURE])]  # fmt: skip
        for target in targets:  # first-request costs stay out of the windows
            load_window(target, args, 1)
        parts: dict[str, list[ThroughputResult]] = {t.name: [] for t in targets}
        cpu = {t.name: (0.0, 0.0) for t in targets}
        window = max(1.0, round(args.duration / args.blocks))  # wrk takes whole seconds
        for block in range(args.blocks):
            for target in order(targets, block):
                before = target.cpu()
                parts[target.name].append(load_window(target, args, window))
                cpu[target.name] = _add(cpu[target.name], _sub(target.cpu(), before))
        result["throughput"] = {name: throughput_summary(parts[name], cpu[name]) for name in parts}
    finally:
        stop_process(cog)
    result["load_avg_1m_end"] = os.getloadavg()[0]
    return result


def ratios(r: dict[str, Any]) -> dict[str, float]:
    seq, thr = r["sequential"], r["throughput"]

    def q(kind: dict[str, Any], key: str) -> float:
        return float(kind["vendo"][key] / kind["cog"][key]) if kind["cog"][key] else float("nan")

    return {
        "seq_median": q(seq, "median_ms"),
        "seq_p99": q(seq, "p99_ms"),
        "seq_ms_per_success": q(seq, "ms_per_success"),
        "seq_cpu_per_success": q(seq, "cpu_ms_per_success"),
        "throughput": q(thr, "successes_per_s"),
        "throughput_cpu_per_success": q(thr, "cpu_ms_per_success"),
    }


# --- report -----------------------------------------------------------------------------


def _others(statuses: dict[Any, int], ok: int) -> str:
    rest = {int(k): v for k, v in statuses.items() if int(k) != ok}
    return ", ".join(f"{k}×{v}" for k, v in sorted(rest.items())) or "none"


def markdown(rounds: list[dict[str, Any]], round_ratios: list[dict[str, float]],
             clients: int) -> str:  # fmt: skip
    lines = [
        f"| round | load 1m (start/end) | server | seq median ms | seq p99 ms | seq ms per "
        f"success | seq other replies | seq CPU ms per success | c={clients} successes/s "
        f"| c={clients} p50 / p99 ms | c={clients} not succeeded | c={clients} CPU ms per "
        "success |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, r in enumerate(rounds, 1):
        for name, ok in (("cog", 200), ("vendo", 201)):
            s, t = r["sequential"][name], r["throughput"][name]
            lines.append(
                f"| {n} | {r['load_avg_1m_start']:.2f} / {r['load_avg_1m_end']:.2f} | {name} "
                f"| {s['median_ms']:.2f} | {s['p99_ms']:.2f} | {s['ms_per_success']:.2f} "
                f"| {_others(s['statuses'], ok)} | {s['cpu_ms_per_success']:.2f} "
                f"| {t['successes_per_s']:.0f} | {t['p50_ms']:.1f} / {t['p99_ms']:.1f} "
                f"| {t['not_succeeded']} | {t['cpu_ms_per_success']:.2f} |"
            )
    keys = [
        ("seq_median", "seq median"),
        ("seq_p99", "seq p99"),
        ("seq_ms_per_success", "seq ms per success"),
        ("seq_cpu_per_success", "seq CPU per success"),
        ("throughput", f"c={clients} successes/s"),
        ("throughput_cpu_per_success", f"c={clients} CPU per success"),
    ]
    lines += [
        "",
        "| round | " + " | ".join(f"Vendo/Cog {label}" for _, label in keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for n, q in enumerate(round_ratios, 1):
        lines.append(f"| {n} | " + " | ".join(f"{q[k]:.2f}" for k, _ in keys) + " |")
    med = summary(round_ratios)
    lines.append("| **median** | " + " | ".join(f"**{med[k]:.2f}**" for k, _ in keys) + " |")
    empty = [str(n) for n, r in enumerate(rounds, 1) if not r["throughput"]["cog"]["succeeded"]]
    if empty:
        lines += [
            "",
            f"Cog had no success under load in round(s) {', '.join(empty)} (every reply "
            "409): those rounds are left out of the throughput medians.",
        ]
    lines += [
        "",
        f"Acceptance: median latency ratio {med['seq_median']:.2f} (target <= 1.5): "
        f"{'met' if med['seq_median'] <= 1.5 else 'MISSED'}; throughput ratio at "
        f"{clients} clients {med['throughput']:.2f} (target >= 1.0): "
        f"{'met' if med['throughput'] >= 1.0 else 'MISSED'}.",
    ]
    return "\n".join(lines)


def summary(round_ratios: list[dict[str, float]]) -> dict[str, float]:
    """Median per ratio over the rounds where it is defined (coglet can answer a whole
    load window 409, leaving Cog without a single success to divide by)."""
    out = {}
    for key in round_ratios[0]:
        values = [q[key] for q in round_ratios if math.isfinite(q[key])]
        out[key] = statistics.median(values) if values else math.nan
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=50, help="sequential warm-up requests")
    parser.add_argument("--requests", type=int, default=400, help="sequential measured requests")
    parser.add_argument("--clients", type=int, default=32, help="closed-loop load clients")
    parser.add_argument(
        "--duration", type=float, default=8.0, help="throughput seconds per server and round"
    )
    parser.add_argument(
        "--blocks", type=int, default=4, help="alternating blocks per round and measure"
    )
    parser.add_argument("--client", choices=["auto", "wrk", "asyncio"], default="auto")
    parser.add_argument(
        "--vendo-python",
        type=Path,
        default=REPO_ROOT / ".venv" / "bin" / "python",
        help="interpreter with vendo installed",
    )
    parser.add_argument(
        "--vendo-rev",
        default="HEAD",
        help="commit of src/vendo to measure (exported to .bench), or 'worktree'",
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "v1_bench.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    BENCH_DIR.mkdir(exist_ok=True)
    cog_python = ensure_cog_venv()
    src, vendo_rev = vendo_snapshot(args.vendo_rev)
    work = Path(tempfile.mkdtemp(prefix="v1-bench-", dir=BENCH_DIR))
    port = free_port()
    log_path = BENCH_DIR / "logs" / f"v1-vendo-{port}.log"
    vendo = start_vendo(args.vendo_python, work / "data", port, log_path, src)
    rounds: list[dict[str, Any]] = []
    round_ratios: list[dict[str, float]] = []
    try:
        versions = {name: push(port, name) for name in (SYNC_FIXTURE, ASYNC_FIXTURE)}
        warm = {
            name: warm_vendo(Target.vendo(vendo, port, version))
            for name, version in versions.items()
        }
        print(f"vendo {vendo_rev}: pushed {versions}, warm in {warm}", file=sys.stderr)
        for n in range(1, args.rounds + 1):
            r = measure_round(args, cog_python, vendo, port, versions)
            rounds.append(r)
            round_ratios.append(ratios(r))
            q = round_ratios[-1]
            print(
                f"round {n}/{args.rounds} (load {r['load_avg_1m_start']:.2f}): seq median "
                f"cog {r['sequential']['cog']['median_ms']:.2f} ms, vendo "
                f"{r['sequential']['vendo']['median_ms']:.2f} ms (x{q['seq_median']:.2f}); "
                f"c={args.clients} cog {r['throughput']['cog']['successes_per_s']:.0f}/s, "
                f"vendo {r['throughput']['vendo']['successes_per_s']:.0f}/s "
                f"(x{q['throughput']:.2f})",
                file=sys.stderr,
                flush=True,
            )
    finally:
        stop_process(vendo)
        shutil.rmtree(work, ignore_errors=True)
    wrk = shutil.which("wrk")
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "environment": {
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "client_python": platform.python_version(),
            "cog_venv": cog_versions(cog_python),
            "vendo_measured": vendo_rev,
            "wrk": subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("\n")[0]
            if wrk
            else None,
        },
        "rounds": rounds,
        "ratios": round_ratios,
        "median_ratios": summary(round_ratios) if round_ratios else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if round_ratios:
        print(markdown(rounds, round_ratios, args.clients))
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
