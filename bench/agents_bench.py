"""Scaled mode (#15): throughput with 1, 2 and 3 agents, and the claim latency that
PostgreSQL adds against the embedded default.

Throughput: an API-only ``vendo serve --no-runners`` on PostgreSQL and a bucket (moto's
server), with N ``vendo agent`` processes; ``bench/fixtures/sleep_100ms`` (100 ms per
prediction, one slot per agent). After a warm-up (every agent's runner up), ``--count``
predictions are created at once, eight requests at a time, and the time from the first
create to the last completion is taken from the database (``completed_at``).

Claim latency: ``--sequential`` predictions one after the other (created without a
wait, then waited for), each's ``started_at - created_at``: on the embedded default
(``vendo serve``, SQLite, runners in the process) and through the API-only server with
one agent (the job inserted, NOTIFY, the agent's claim transaction, the hand-off).

    .venv/bin/python bench/agents_bench.py --count 150 --sequential 40
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from common import BENCH_DIR, free_port, stop_process

MODEL = Path(__file__).resolve().parent / "fixtures" / "sleep_100ms"
TOKEN = "bench-agents-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def _start(argv: list[str], env: dict[str, str], log: Path, ready: Any) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[2:5]} exited: {log.read_text()[-2000:]}")
        return bool(ready())

    _until(up, 180, " ".join(argv[2:5]))
    return proc


def _answers(url: str) -> Any:
    def check() -> bool:
        try:
            return httpx.get(f"{url}/v1/account", headers=HEADERS, timeout=5).is_success
        except httpx.TransportError:
            return False

    return check


@contextlib.contextmanager
def _schema(database: str) -> Iterator[str]:
    engine = sa.create_engine(database.replace("postgresql:", "postgresql+psycopg:", 1))
    name = f"bench_agents_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    sep = "&" if "?" in database else "?"
    try:
        yield f"{database}{sep}options=-csearch_path%3D{name}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        engine.dispose()


class Cluster:
    """An API-only server and ``agents`` agents on a fresh schema and bucket."""

    def __init__(self, root: Path, env: dict[str, str], agents: int) -> None:
        self.root, self.env, self.agents = root, env, agents
        self.procs: list[subprocess.Popen[bytes]] = []
        self.url = ""

    def __enter__(self) -> Cluster:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        api = self.root / "api"
        argv = [sys.executable, "-m", "vendo", "serve", "--no-runners", "--port", str(port)]
        env = {**self.env, "VENDO_DATA_DIR": str(api)}
        self.procs.append(_start(argv, env, self.root / "api.log", _answers(self.url)))
        pushed = subprocess.run(
            [sys.executable, "-m", "vendo", "push", str(MODEL), "admin/sleep", "-q",
             "--url", self.url], env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if pushed.returncode != 0:
            raise RuntimeError(pushed.stderr)
        for n in range(1, self.agents + 1):
            log = self.root / f"agent-{n}.log"
            argv = [sys.executable, "-m", "vendo", "agent", "--name", f"agent-{n}"]
            argv += ["--data-dir", str(self.root / f"agent-{n}")]
            ready = lambda log=log: "running models" in log.read_text(errors="replace")  # noqa: E731
            self.procs.append(_start(argv, self.env, log, ready))

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)


def _create(client: httpx.Client, n: int) -> dict[str, Any]:
    r = client.post("/v1/predictions", json={"version": _version(client), "input": {"n": n}})
    r.raise_for_status()
    return dict(r.json())


_versions: dict[str, str] = {}


def _version(client: httpx.Client) -> str:
    base = str(client.base_url)
    if base not in _versions:
        model = client.get("/v1/models/admin/sleep").json()
        _versions[base] = model["latest_version"]["id"]
    return _versions[base]


def _wait(client: httpx.Client, prediction_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        row = dict(client.get(f"/v1/predictions/{prediction_id}").json())
        return row if row["status"] in ("succeeded", "failed", "canceled") else None

    row: dict[str, Any] = _until(ended, 120, "a prediction to end")
    if row["status"] != "succeeded":
        raise RuntimeError(f"prediction {prediction_id}: {row['status']} {row.get('error')}")
    return row


def _throughput(url: str, count: int, agents: int) -> float:
    with httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client:
        # warm-up: every agent's runner started (one slot each)
        with ThreadPoolExecutor(8) as pool:
            warm = list(pool.map(lambda n: _create(client, n), range(agents * 4)))
        for row in warm:
            _wait(client, row["id"])
        start = time.time()
        with ThreadPoolExecutor(8) as pool:
            made = list(pool.map(lambda n: _create(client, n), range(count)))
        last = max(_parse(_wait(client, row["id"])["completed_at"]) for row in made)
    return count / (last - start)


def _parse(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _claim_latency(url: str, runs: int) -> list[float]:
    waits = []
    with httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client:
        _wait(client, _create(client, 0)["id"])  # the runner is up
        for n in range(runs):
            row = _wait(client, _create(client, n)["id"])
            waits.append((_parse(row["started_at"]) - _parse(row["created_at"])) * 1000)
    return waits


def _embedded(root: Path, env: dict[str, str], runs: int) -> list[float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = root / "embedded"
    own = {k: v for k, v in env.items() if not k.startswith(("VENDO_DATABASE", "VENDO_STORAGE"))}
    own["VENDO_DATA_DIR"] = str(data)
    argv = [sys.executable, "-m", "vendo", "serve", "--port", str(port)]
    proc = _start(argv, own, root / "embedded.log", _answers(url))
    try:
        subprocess.run(
            [sys.executable, "-m", "vendo", "push", str(MODEL), "admin/sleep", "-q", "--url", url],
            env=own, check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        return _claim_latency(url, runs)
    finally:
        stop_process(proc)


def _summary(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[int(0.9 * (len(values) - 1))]
    return f"median {statistics.median(values):.1f} ms, p90 {p90:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--count", type=int, default=150)
    parser.add_argument("--sequential", type=int, default=40)
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    BENCH_DIR.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="agents-bench-", dir=BENCH_DIR))
    moto_port = free_port()
    endpoint = f"http://127.0.0.1:{moto_port}"
    base = {**os.environ, **AWS, "VENDO_API_TOKEN": TOKEN, "VENDO_ALLOW_NEAREST_PYTHON": "1"}
    moto = _start(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
        base, root / "moto.log", lambda: _ok(f"{endpoint}/moto-api/"),
    )  # fmt: skip
    try:
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        rates: dict[int, float] = {}
        latency: list[float] = []
        for agents in args.agents:
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            httpx.put(f"{endpoint}/{bucket}").raise_for_status()
            with _schema(args.database_url) as database:
                env = {
                    **base,
                    "VENDO_DATABASE_URL": database,
                    "VENDO_STORAGE_URL": f"s3://{bucket}",
                    "VENDO_STORAGE_ENDPOINT_URL": endpoint,
                }
                with Cluster(root / f"n{agents}", env, agents) as cluster:
                    rates[agents] = _throughput(cluster.url, args.count, agents)
                    print(f"{agents} agent(s): {rates[agents]:.1f} predictions/s")
                    if agents == 1:
                        latency = _claim_latency(cluster.url, args.sequential)
        embedded = _embedded(root, base, args.sequential)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        print("\n| agents | predictions/s | of the ideal (10/s per agent) |\n|---|---|---|")
        for agents, rate in rates.items():
            print(f"| {agents} | {rate:.1f} | {rate / (10 * agents):.0%} |")
        print(f"\ncreated -> started, embedded (SQLite): {_summary(embedded)}")
        print(f"created -> started, API server + agent (PostgreSQL): {_summary(latency)}")
    finally:
        stop_process(moto)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).is_success
    except httpx.TransportError:
        return False


if __name__ == "__main__":
    main()
