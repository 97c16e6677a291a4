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
    "SequentialResult",
    "ThroughputResult",
    "free_port",
    "group_cpu_seconds",
    "get_json",
    "percentile",
    "sequential_latency",
    "stop_process",
    "throughput",
    "wait_ready",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / ".bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a server we started, with the children it spawned.

    Servers are started with ``start_new_session=True``, so the process group id
    is the PID we started; signalling that group reaches the model worker too
    without looking anything up by name.
    """
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no worker of its group outlives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


def group_cpu_seconds(pgid: int) -> dict[str, float]:
    """CPU seconds (user + system) so far of each live process in a process group.

    Keys are ``"<pid> <name>"``. Linux only (reads /proc); empty elsewhere.
    """
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[2] is pgrp, fields[11] utime, fields[12] stime (proc(5), from "state")
        if int(fields[2]) == pgid:
            found[f"{entry.name} {name}"] = (int(fields[11]) + int(fields[12])) / tick
    return found


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
    raise RuntimeError(f"server not READY after {timeout:.0f}s (last: {last!r}){_tail(log_path)}")


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


def sequential_latency(
    host: str, port: int, path: str, body: bytes, warmup: int, n: int
) -> SequentialResult:
    """Back-to-back requests on one connection; latency over the 200 replies only."""
    conn = HttpConnection(host, port)
    statuses: Counter[int] = Counter()
    samples: list[float] = []
    try:
        for _ in range(warmup):
            conn.request("POST", path, body)
        loop_start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            status, _reply = conn.request("POST", path, body)
            elapsed = time.perf_counter() - t0
            statuses[status] += 1
            if status == 200:
                samples.append(elapsed * 1000)
        loop_ms = (time.perf_counter() - loop_start) * 1000
    finally:
        conn.close()
    if not samples:
        raise RuntimeError(f"no 200 replies: {dict(statuses)}")
    return SequentialResult(
        n=n,
        median_ms=statistics.median(samples),
        p99_ms=percentile(samples, 99),
        mean_ms=statistics.fmean(samples),
        ms_per_ok=loop_ms / len(samples),
        warmup=warmup,
        statuses=dict(statuses),
    )


@dataclass
class ThroughputResult:
    tool: str
    concurrency: int
    seconds: float
    statuses: dict[int, int]
    p50_ms: float | None
    p99_ms: float | None
    errors: int = 0

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


def throughput(
    host: str,
    port: int,
    path: str,
    body: bytes,
    concurrency: int,
    duration: float,
    tool: str = "auto",
) -> ThroughputResult:
    """Closed-loop load: ``concurrency`` keep-alive connections for ``duration`` s.

    ``wrk`` (C, one thread) is used when installed, since a Python client on the
    same two cores tops out near the rates measured here; the asyncio client is
    the fallback.
    """
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "asyncio"
    if tool == "wrk":
        return _wrk(host, port, path, body, concurrency, duration)
    return asyncio.run(_asyncio_load(host, port, path, body, concurrency, duration))


_WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.body = BODY
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
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
  end
end
"""


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wrk(
    host: str, port: int, path: str, body: bytes, concurrency: int, duration: float
) -> ThroughputResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT.replace("BODY", _lua_string(body.decode()), 1))
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                f"-d{duration:g}s",
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
    for line in out.splitlines():
        parts = line.split()
        if parts[:1] == ["RESULT"]:
            values[parts[1]] = float(parts[2])
        elif parts[:1] == ["STATUS"]:
            statuses[int(parts[1])] = statuses.get(int(parts[1]), 0) + int(parts[2])
    return ThroughputResult(
        tool="wrk",
        concurrency=concurrency,
        seconds=values["seconds"],
        statuses=statuses,
        p50_ms=values["p50"],
        p99_ms=values["p99"],
        errors=int(values["errors"]),
    )


async def _asyncio_load(
    host: str, port: int, path: str, body: bytes, concurrency: int, duration: float
) -> ThroughputResult:
    request = build_request("POST", path, host, port, body)
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    errors = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
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
    )
