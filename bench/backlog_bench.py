"""``vendo serve`` with 100,000 queued predictions against the same server with an empty
queue: restart time, idle CPU, ``GET /v1/predictions/{id}`` latency.

One data dir per measured commit. The ``backlog_sleep`` fixture is pushed through the
API and the server restarted a few times with an empty queue (nothing running). Then the
server is stopped, one prediction that sleeps an hour goes in ahead, and N more (default
100,000) are inserted straight into the store, predictions and jobs, in batches: a
tenth carry a deadline an hour away and a third a webhook, as real ones would. With the
backlog the sleeper holds the model's only slot, so everything behind it stays queued
while the server is measured (each restart fails the running one as interrupted and
starts the next, as the restart policy says). For each state:

* restart: seconds from launching ``vendo serve`` to the first ``200`` of ``GET
  /v1/predictions/{id}`` (polled every 5 ms), median and max over ``--restarts``;
* peak RSS of the server process (``VmHWM``) after the last restart;
* idle CPU: the server process's user + system CPU over ``--idle`` seconds once it
  has settled (``--settle``), as a percentage of one core; the model's runner (a
  child that sleeps) is left out;
* GET: ``--gets`` sequential ``GET /v1/predictions/{id}`` on one keep-alive
  connection after a warm-up, median and p99.

The machine is shared: the 1-minute load average is taken before and after each
state. ``--baseline-rev`` measures another commit too (its own data dir and fill), in
the same run.

Run from the repository root (JSON in ``.bench/backlog_bench.json``)::

    .venv/bin/python bench/backlog_bench.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The bench scripts run as files, so their folder is on sys.path.
from common import (
    BENCH_DIR,
    REPO_ROOT,
    HttpConnection,
    free_port,
    percentile,
    stop_process,
    tree_cpu_seconds,
)
from serve_model_bench import vendo_snapshot

__all__ = ["main"]

HOST = "127.0.0.1"
TOKEN = "bench-token"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "backlog_sleep"
MODEL = "backlog-sleep"
BATCH = 5000
HOUR = 3600.0


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def _env(src: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(
        VENDO_API_TOKEN=TOKEN,
        VENDO_IDLE_TIMEOUT="3600",
        VENDO_ALLOW_NEAREST_PYTHON="true",
    )
    env.update(extra or {})
    if src is not None:
        env["PYTHONPATH"] = str(src)  # ahead of the editable install: the snapshot
    return env


class Server:
    """One ``vendo serve`` on a data dir, launched and timed to its first reply."""

    def __init__(
        self,
        python: Path,
        data_dir: Path,
        src: Path | None,
        log_dir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.python, self.data_dir, self.src, self.log_dir = python, data_dir, src, log_dir
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0

    def start(self, probe: str, timeout: float = 120.0) -> float:
        """Launch; return seconds until ``GET probe`` first answers 200."""
        if self.proc is not None:
            raise RuntimeError("stop the running server first: two would share the data dir")
        self.port = free_port()
        self.starts += 1
        log_path = self.log_dir / f"serve-{self.starts}.log"
        argv = [str(self.python), "-m", "vendo", "serve", "--host", HOST,
                "--port", str(self.port), "--data-dir", str(self.data_dir)]  # fmt: skip
        launched = time.perf_counter()
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=_env(self.src, self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while time.perf_counter() - launched < timeout:
            if self.proc.poll() is not None:
                break
            try:
                conn = HttpConnection(HOST, self.port, timeout=10)
                try:
                    status, _ = conn.request("GET", probe, headers=_auth())
                finally:
                    conn.close()
                if status == 200:
                    return time.perf_counter() - launched
            except OSError:
                pass
            time.sleep(0.005)
        self.stop()
        raise RuntimeError("vendo serve did not answer:\n" + log_path.read_text()[-3000:])

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=30)
            self.proc = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = HttpConnection(HOST, self.port, timeout=900)
        try:
            data = json.dumps(body).encode() if body is not None else b""
            status, reply = conn.request(method, path, data, _auth())
        finally:
            conn.close()
        return status, json.loads(reply) if reply else None

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process alone (not its runner children)."""
        assert self.proc is not None
        for key, seconds in tree_cpu_seconds(self.proc.pid).items():
            if key.startswith(f"{self.proc.pid} "):
                return seconds
        raise RuntimeError("the server process is gone")

    def peak_rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def push(server: Server, fixture: Path = FIXTURE, model: str = MODEL) -> str:
    import httpx

    from vendo.packages import archive_bytes

    reply = httpx.post(
        f"http://{HOST}:{server.port}/v1/models/admin/{model}/versions",
        content=archive_bytes(fixture),
        headers={**_auth(), "Content-Type": "application/gzip"},
        timeout=900,
    )
    reply.raise_for_status()
    return str(reply.json()["id"])


def fill(data_dir: Path, version_id: str, count: int) -> dict[str, Any]:
    """Insert ``count`` queued predictions and their jobs straight into the store (run
    in a child whose ``vendo`` is the measured commit: see ``--fill``)."""
    from datetime import timedelta
    from typing import cast

    import sqlalchemy as sa

    from vendo.store import JobRow, PredictionRow, Store, database_url, new_id, utcnow
    from vendo.store.prepared import insert_all_columns

    store = Store.open(database_url(data_dir, None))
    version = store.catalog.version(version_id)
    admin = store.accounts.user_named("admin")
    assert version is not None and admin is not None
    insert = insert_all_columns(cast(sa.Table, PredictionRow.__table__))
    jobs = sa.insert(cast(sa.Table, JobRow.__table__))
    pooled = "pool" in cast(sa.Table, JobRow.__table__).c
    started = time.perf_counter()
    first = ""
    for offset in range(0, count, BATCH):
        now = utcnow()
        predictions, queued = [], []
        for i in range(offset, min(count, offset + BATCH)):
            pid = new_id()
            first = first or pid
            predictions.append(
                {
                    "id": pid,
                    "owner_id": admin.id,
                    "model_id": version.model_id,
                    "model": f"admin/{MODEL}",
                    "version_id": version_id,
                    "input": {"seconds": HOUR},
                    "run_input": {"seconds": HOUR},
                    "status": "starting",
                    "created_at": now,
                    "deadline": now + timedelta(hours=1) if i % 10 == 0 else None,
                    "webhook": f"http://{HOST}:9/hook" if i % 3 == 0 else None,
                    "webhook_events_filter": ["completed"] if i % 3 == 0 else None,
                }
            )
            queued.append(
                {
                    "kind": "predict",
                    "prediction_id": pid,
                    "version_id": version_id,
                    "state": "queued",
                    "created_at": now,
                    # the version's shared pool (commits before deployments have no pool)
                    **({"pool": f"version:{version_id}"} if pooled else {}),
                }
            )
        with store.transaction() as conn:
            insert.execute(conn, predictions)
            conn.execute(jobs, queued)
    seconds = time.perf_counter() - started
    store.checkpoint(truncate=True)
    store.close()
    return {"count": count, "seconds": round(seconds, 2), "first": first}


def _loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def measure(server: Server, probe: str, args: argparse.Namespace) -> dict[str, Any]:
    """Restart ``args.restarts`` times, then idle CPU and GET latency on the last."""
    load_before = _loadavg()
    restarts = []
    for _ in range(args.restarts):
        server.stop()  # a no-op when stopped; else the one run_rev started would linger
        restarts.append(server.start(probe))
    time.sleep(args.settle)
    rss = server.peak_rss_mib()
    cpu0, t0 = server.cpu_seconds(), time.perf_counter()
    time.sleep(args.idle)
    cpu1, t1 = server.cpu_seconds(), time.perf_counter()
    conn = HttpConnection(HOST, server.port)
    latencies = []
    try:
        for n in range(args.warmup + args.gets):
            began = time.perf_counter()
            status, _ = conn.request("GET", probe, headers=_auth())
            if status != 200:
                raise RuntimeError(f"GET {probe} answered {status}")
            if n >= args.warmup:
                latencies.append((time.perf_counter() - began) * 1000)
    finally:
        conn.close()
    return {
        "restart_s": [round(r, 3) for r in restarts],
        "restart_median_s": round(statistics.median(restarts), 3),
        "restart_max_s": round(max(restarts), 3),
        "peak_rss_mib": round(rss, 1),
        "idle_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
        "get_median_ms": round(statistics.median(latencies), 3),
        "get_p99_ms": round(percentile(latencies, 99), 3),
        "load_before": load_before,
        "load_after": _loadavg(),
    }


def run_rev(rev: str, args: argparse.Namespace) -> dict[str, Any]:
    src, described = vendo_snapshot(rev)
    base = Path(tempfile.mkdtemp(prefix=f"backlog-{described}-", dir=BENCH_DIR))
    data_dir, log_dir = base / "data", base / "logs"
    log_dir.mkdir(parents=True)
    server = Server(args.vendo_python, data_dir, src, log_dir)
    try:
        server.start("/v1/account")
        version = push(server)
        print(f"[{described}] pushed {version[:12]}", file=sys.stderr, flush=True)
        status, sleeper = server.request(
            "POST", "/v1/predictions", {"version": version, "input": {"seconds": 0.01}}
        )
        assert status == 201, sleeper
        empty = measure(server, f"/v1/predictions/{sleeper['id']}", args)
        print(f"[{described}] empty: {empty}", file=sys.stderr, flush=True)
        server.stop()
        child = subprocess.run(
            [str(args.vendo_python), __file__, "--fill", str(data_dir), version, str(args.count)],
            env=_env(src),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        filled = json.loads(child.stdout)
        print(f"[{described}] filled: {filled}", file=sys.stderr, flush=True)
        backlog = measure(server, f"/v1/predictions/{filled['first']}", args)
        print(f"[{described}] backlog: {backlog}", file=sys.stderr, flush=True)
        status, body = server.request("GET", f"/v1/predictions/{filled['first']}")
        left = body["status"] if status == 200 else status
    finally:
        server.stop()
    return {"rev": described, "empty": empty, "backlog": backlog, "fill": filled,
            "probe_status_after": left}  # fmt: skip


def markdown(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"{args.count:,} queued predictions against an empty queue, `vendo serve` on SQLite "
        f"({platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs); restarts: median (max) of {args.restarts}; "
        f"idle CPU over {args.idle:g} s after {args.settle:g} s; GET: {args.gets} "
        "sequential requests on one keep-alive connection.",
        "",
        "| commit | queue | restart to first reply | peak RSS | idle CPU | GET median | "
        "GET p99 | load avg (before → after) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for label, m in (("empty", r["empty"]), (f"{args.count:,}", r["backlog"])):
            lines.append(
                f"| `{r['rev']}` | {label} | {m['restart_median_s']:.2f} s "
                f"({m['restart_max_s']:.2f}) | {m['peak_rss_mib']:.0f} MiB | "
                f"{m['idle_cpu_pct']:.1f}% | {m['get_median_ms']:.2f} ms | "
                f"{m['get_p99_ms']:.2f} ms | {m['load_before']} → {m['load_after']} |"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="queued predictions")
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before idle CPU")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--gets", type=int, default=2000)
    parser.add_argument(
        "--vendo-python",
        type=Path,
        default=REPO_ROOT / ".venv" / "bin" / "python",
        help="interpreter with vendo installed",
    )
    parser.add_argument(
        "--rev",
        default="HEAD",
        help="commit of src/vendo to measure (exported to .bench), or 'worktree'",
    )
    parser.add_argument("--baseline-rev", help="another commit to measure in the same run")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "backlog_bench.json")
    parser.add_argument(
        "--fill", nargs=3, metavar=("DATA_DIR", "VERSION", "COUNT"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.fill:
        data_dir, version, count = args.fill
        print(json.dumps(fill(Path(data_dir), version, int(count))))
        return
    BENCH_DIR.mkdir(exist_ok=True)
    revs = [args.rev] + ([args.baseline_rev] if args.baseline_rev else [])
    results = [run_rev(rev, args) for rev in revs]
    args.out.write_text(json.dumps(results, indent=2))
    print(markdown(results, args))


if __name__ == "__main__":
    main()
