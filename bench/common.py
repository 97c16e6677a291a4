"""Shared pieces for the benchmark scripts: ports, process control, lean HTTP clients.

The clients are deliberately small. On a 2-core machine the client shares the
CPUs with the server under test, so an HTTP library's per-request overhead would
flatten the differences we want to see. Both clients speak HTTP/1.1 keep-alive
over raw sockets and understand only what the servers under test send
(Content-Length or chunked bodies).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH_DIR",
    "REPO_ROOT",
    "HttpConnection",
    "SequentialSampler",
    "SequentialResult",
    "ThroughputResult",
    "free_port",
    "get_json",
    "merge_throughput",
    "percentile",
    "process_tree",
    "sequential_latency",
    "stop_process",
    "throughput",
    "tree_cpu_seconds",
    "wait_ready",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / ".bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (ppid, name, CPU seconds user + system) for every live process (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        # After the name: state ppid pgrp ... utime (11th) stime (12th); see proc(5).
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / tick)
    return table


def process_tree(pid: int, table: dict[int, tuple[int, str, float]] | None = None) -> list[int]:
    """``pid`` and its live descendants (a server and the model workers it spawned)."""
    table = table if table is not None else _proc_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(child)
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        if current in table:
            tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds so far of ``pid`` and each live descendant, keyed ``"<pid> <name>"``."""
    table = _proc_table()
    return {f"{p} {table[p][1]}": table[p][2] for p in process_tree(pid, table)}


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a server we started, and every process it spawned.

    Servers are started with ``start_new_session=True``, so signalling the group
    of the PID we started reaches workers that stay in that group; workers that
    lead their own session (Vendo's runner children) are found as descendants
    of that PID before it is signalled, and killed by PID if they outlive it.
    """
    if proc.poll() is not None:
        return
    tree = process_tree(proc.pid)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        break
    for pid in tree:
        if pid != proc.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class HttpConnection:
    """One blocking keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        self.sock.sendall(build_request(method, path, self.host, self.port, body, headers))
        return self._read_response()

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _read_response(self) -> tuple[int, bytes]:
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._recv()
        head, self.buf = self.buf[:end], self.buf[end + 4 :]
        status, length, chunked = parse_head(head)
        if chunked:
            return status, self._read_chunked()
        while len(self.buf) < length:
            self._recv()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, body

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            while (eol := self.buf.find(b"\r\n")) < 0:
                self._recv()
            size = int(self.buf[:eol].split(b";")[0], 16)
            while len(self.buf) < eol + 2 + size + 2:
                self._recv()
            body += self.buf[eol + 2 : eol + 2 + size]
            self.buf = self.buf[eol + 2 + size + 2 :]
            if size == 0:
                return body


def build_request(
    method: str,
    path: str,
    host: str,
    port: int,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    if body or method in ("POST", "PUT"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:\s*chunked", re.IGNORECASE)


def parse_head(head: bytes) -> tuple[int, int, bool]:
    status = int(head[9:12])
    if _CHUNKED.search(head):
        return status, 0, True
    match = _CONTENT_LENGTH.search(head)
    return status, int(match.group(1)) if match else 0, False


def get_json(host: str, port: int, path: str, timeout: float = 5.0) -> Any:
    conn = HttpConnection(host, port, timeout=timeout)
    try:
        _, body = conn.request("GET", path)
    finally:
        conn.close()
    return json.loads(body)


def wait_ready(
    proc: subprocess.Popen[bytes], host: str, port: int, timeout: float, log_path: Path | None
) -> float:
    """Poll ``/health-check`` until READY; return seconds from now until then."""
    start = time.perf_counter()
    deadline = start + timeout
    last: object = None
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            code = proc.returncode
            raise RuntimeError(f"server exited with {code} before READY{_tail(log_path)}")
        try:
            last = get_json(host, port, "/health-check", timeout=2.0)
        except (OSError, ValueError) as exc:
            last = exc
        else:
            if isinstance(last, dict):
                if last.get("status") == "READY":
                    return time.perf_counter() - start
                if last.get("status") in ("SETUP_FAILED", "DEFUNCT"):
                    break
        time.sleep(0.05)
    raise RuntimeError(f"server not READY (last: {last!r}){_tail(log_path)}")


def launch_server(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    host: str,
    port: int,
    timeout: float,
) -> subprocess.Popen[bytes]:
    """Start a server in its own session, logging to ``log_path``, and wait until READY.

    A server that fails to get READY is stopped. The returned process's ``ready_s``
    attribute holds launch-to-READY seconds; stop it with :func:`stop_process`.
    """
    launched = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_ready(proc, host, port, timeout, log_path)
    except BaseException:
        stop_process(proc)
        raise
    proc.ready_s = time.perf_counter() - launched  # type: ignore[attr-defined]
    return proc


def _tail(log_path: Path | None, lines: int = 20) -> str:
    if log_path is None or not log_path.exists():
        return ""
    text = log_path.read_text(errors="replace").splitlines()[-lines:]
    return "\n--- log tail ---\n" + "\n".join(text)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; fine for the few hundred samples we take."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class SequentialResult:
    n: int
    median_ms: float
    p99_ms: float
    mean_ms: float
    # Wall time of the measured loop over the 200 replies: what a client that
    # retries every 409 at once pays per successful prediction.
    ms_per_ok: float
    warmup: int
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def non_200(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != 200)


class SequentialSampler:
    """Back-to-back requests on one keep-alive connection, measured in blocks.

    Blocks let a benchmark interleave several servers (A, B, B, A, ...) so that
    a burst of load from elsewhere on the machine hits all of them alike.
    Latency is kept for the 200 replies only; other statuses are counted.
    """

    def __init__(self, host: str, port: int, path: str, body: bytes) -> None:
        self.conn = HttpConnection(host, port)
        self.path = path
        self.body = body
        self.warmup = 0
        self.samples: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.loop_s = 0.0

    def warm(self, n: int) -> None:
        for _ in range(n):
            self.conn.request("POST", self.path, self.body)
        self.warmup += n

    def run(self, n: int) -> None:
        conn, path, body = self.conn, self.path, self.body
        loop_start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            status, _reply = conn.request("POST", path, body)
            elapsed = time.perf_counter() - t0
            self.statuses[status] += 1
            if status == 200:
                self.samples.append(elapsed * 1000)
        self.loop_s += time.perf_counter() - loop_start

    def close(self) -> None:
        self.conn.close()

    def result(self) -> SequentialResult:
        samples = self.samples
        if not samples:
            raise RuntimeError(f"no 200 replies: {dict(self.statuses)}")
        return SequentialResult(
            n=sum(self.statuses.values()),
            median_ms=statistics.median(samples),
            p99_ms=percentile(samples, 99),
            mean_ms=statistics.fmean(samples),
            ms_per_ok=self.loop_s * 1000 / len(samples),
            warmup=self.warmup,
            statuses=dict(self.statuses),
        )


def sequential_latency(
    host: str, port: int, path: str, body: bytes, warmup: int, n: int
) -> SequentialResult:
    """Warm-up, then ``n`` back-to-back requests on one connection."""
    sampler = SequentialSampler(host, port, path, body)
    try:
        sampler.warm(warmup)
        sampler.run(n)
    finally:
        sampler.close()
    return sampler.result()


@dataclass
class ThroughputResult:
    tool: str
    concurrency: int
    seconds: float
    statuses: dict[int, int]
    p50_ms: float | None
    p99_ms: float | None
    errors: int = 0
    # Replies whose body holds ``"status":"succeeded"`` (a finished prediction).
    succeeded: int = 0

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok_per_s(self) -> float:
        return self.statuses.get(200, 0) / self.seconds

    @property
    def total_per_s(self) -> float:
        return self.total / self.seconds

    @property
    def non_200(self) -> int:
        return self.total - self.statuses.get(200, 0)


def merge_throughput(parts: list[ThroughputResult]) -> ThroughputResult:
    """Add up several load windows; percentiles become the median over windows."""
    statuses: Counter[int] = Counter()
    for part in parts:
        statuses.update(part.statuses)
    p50s = [p.p50_ms for p in parts if p.p50_ms is not None]
    p99s = [p.p99_ms for p in parts if p.p99_ms is not None]
    return ThroughputResult(
        tool=parts[0].tool,
        concurrency=parts[0].concurrency,
        seconds=sum(p.seconds for p in parts),
        statuses=dict(statuses),
        p50_ms=statistics.median(p50s) if p50s else None,
        p99_ms=statistics.median(p99s) if p99s else None,
        errors=sum(p.errors for p in parts),
        succeeded=sum(p.succeeded for p in parts),
    )


def throughput(
    host: str,
    port: int,
    path: str,
    body: bytes,
    concurrency: int,
    duration: float,
    tool: str = "auto",
    headers: dict[str, str] | None = None,
) -> ThroughputResult:
    """Closed-loop load: ``concurrency`` keep-alive connections for ``duration`` s.

    ``headers`` are sent with every request (e.g. ``Authorization``, ``Prefer``).

    ``wrk`` (C, one thread) is used when installed, since a Python client on the
    same two cores tops out near the rates measured here; the asyncio client is
    the fallback.
    """
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "asyncio"
    if tool == "wrk":
        return _wrk(host, port, path, body, concurrency, duration, headers)
    return asyncio.run(_asyncio_load(host, port, path, body, concurrency, duration, headers))


_WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.body = BODY
wrk.headers["Content-Type"] = "application/json"
HEADERS
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} succeeded = 0 end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if body and string.find(body, '"status":"succeeded"', 1, true) then
    succeeded = succeeded + 1
  end
end
function done(summary, latency, requests)
  io.write(string.format("RESULT seconds %f\n", summary.duration / 1e6))
  io.write(string.format("RESULT p50 %f\n", latency:percentile(50) / 1e3))
  io.write(string.format("RESULT p99 %f\n", latency:percentile(99) / 1e3))
  local e = summary.errors
  io.write(string.format("RESULT errors %d\n", e.connect + e.read + e.write + e.timeout))
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do
      io.write(string.format("STATUS %d %d\n", k, v))
    end
    io.write(string.format("SUCCEEDED %d\n", t:get("succeeded")))
  end
end
"""


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wrk(
    host: str,
    port: int,
    path: str,
    body: bytes,
    concurrency: int,
    duration: float,
    headers: dict[str, str] | None = None,
) -> ThroughputResult:
    extra = "\n".join(
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in (headers or {}).items()
    )
    lua = _WRK_SCRIPT.replace("BODY", _lua_string(body.decode()), 1).replace("HEADERS", extra, 1)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                f"-d{max(1, round(duration))}s",  # wrk takes whole seconds
                "--timeout",
                "30s",
                "-s",
                script.name,
                f"http://{host}:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    values: dict[str, float] = {}
    statuses: dict[int, int] = {}
    succeeded = 0
    for line in out.splitlines():
        parts = line.split()
        if parts[:1] == ["RESULT"]:
            values[parts[1]] = float(parts[2])
        elif parts[:1] == ["STATUS"]:
            statuses[int(parts[1])] = statuses.get(int(parts[1]), 0) + int(parts[2])
        elif parts[:1] == ["SUCCEEDED"]:
            succeeded += int(parts[1])
    return ThroughputResult(
        tool="wrk",
        concurrency=concurrency,
        seconds=values["seconds"],
        statuses=statuses,
        p50_ms=values["p50"],
        p99_ms=values["p99"],
        errors=int(values["errors"]),
        succeeded=succeeded,
    )


async def _asyncio_load(
    host: str,
    port: int,
    path: str,
    body: bytes,
    concurrency: int,
    duration: float,
    headers: dict[str, str] | None = None,
) -> ThroughputResult:
    request = build_request("POST", path, host, port, body, headers)
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    errors = 0
    succeeded = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal errors, succeeded
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status, length, chunked = parse_head(head[:-4])
                if chunked:
                    reply = await reader.readuntil(b"\r\n0\r\n\r\n")
                else:
                    reply = await reader.readexactly(length)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] += 1
                succeeded += b'"status":"succeeded"' in reply
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            writer.close()

    start = time.perf_counter()
    stop_at = start + duration
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    return ThroughputResult(
        tool="asyncio",
        concurrency=concurrency,
        seconds=seconds,
        statuses=dict(statuses),
        p50_ms=percentile(latencies, 50) if latencies else None,
        p99_ms=percentile(latencies, 99) if latencies else None,
        errors=errors,
        succeeded=succeeded,
    )
