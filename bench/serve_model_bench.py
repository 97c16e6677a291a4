"""Side-by-side: Cog 0.23.1's own server (coglet) against ``vendo serve-model``.

Two trivial predictors (bench/fixtures): ``echo_sync`` returns its input;
``echo_async`` has 8 slots and awaits ``asyncio.sleep(0)``. Each round starts
both servers fresh on a fixture, keeps them up side by side, and measures them
in alternating blocks (Cog, Vendo, then Vendo, Cog, ...), so that load from
elsewhere on the machine hits both alike:

* sequential latency on ``echo_sync``: one keep-alive connection per server,
  warm-up, then N back-to-back POST /predictions split into blocks; median and
  p99 over the 200 replies, and the count of other replies (coglet answers
  some back-to-back requests with 409);
* throughput on ``echo_async``: 8 keep-alive connections in a closed loop
  (wrk when installed, else an asyncio client), the duration split into
  windows; 200 replies per second, 409s and other replies counted apart.

Ratios are Vendo/Cog per round; the summary takes their median. Server CPU
(server plus model worker processes, from /proc) is reported per request.
Results go to ``.bench/serve_model_bench.json`` and a Markdown table to stdout.

Run from the repository root::

    apt-get install -y wrk   # optional; the asyncio client is the fallback
    .venv/bin/python bench/serve_model_bench.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

# The bench scripts run as files, so their folder is on sys.path.
from cog_server import cog_versions, ensure_cog_venv, start_cog_server
from common import (
    BENCH_DIR,
    REPO_ROOT,
    SequentialResult,
    SequentialSampler,
    ThroughputResult,
    free_port,
    launch_server,
    merge_throughput,
    stop_process,
    throughput,
    tree_cpu_seconds,
)

__all__ = ["main"]

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SYNC_PROJECT = FIXTURES / "echo_sync"
ASYNC_PROJECT = FIXTURES / "echo_async"
BODY = json.dumps({"input": {"text": "hello"}}).encode()
HOST = "127.0.0.1"
DEFAULT_VENDO_CMD = "{python} -m vendo serve-model {project} --port {port}"

Starter = Callable[[Path, int], subprocess.Popen[bytes]]


def cog_starter(python: Path) -> Starter:
    def start(project: Path, port: int) -> subprocess.Popen[bytes]:
        return start_cog_server(project, port, python=python, host=HOST)

    return start


def vendo_snapshot(rev: str) -> tuple[Path | None, str]:
    """Export ``src/vendo`` at a commit into .bench, so a run measures that commit.

    Several engineers edit the working tree while benchmarks run; a snapshot
    keeps half-saved files out of the measurement. ``rev="worktree"`` uses the
    working tree as it is. Returns (folder for PYTHONPATH or None, description).
    """
    if rev == "worktree":
        return None, "worktree"
    sha = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = BENCH_DIR / f"vendo-src-{sha}"
    if not (target / "src" / "vendo" / "__init__.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", sha, "src/vendo"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src", sha


def vendo_starter(python: Path, template: str, timeout: float, src: Path | None = None) -> Starter:
    def start(project: Path, port: int) -> subprocess.Popen[bytes]:
        argv = shlex.split(template.format(python=python, project=project, port=port, host=HOST))
        log_path = BENCH_DIR / "logs" / f"vendo-{project.name}-{port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        if src is not None:
            # Ahead of the editable install's path entry, so the snapshot is imported.
            env["PYTHONPATH"] = str(src)
        return launch_server(
            argv,
            cwd=REPO_ROOT,
            env=env,
            log_path=log_path,
            host=HOST,
            port=port,
            timeout=timeout,
        )

    return start


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before.get(key, 0.0) for key in after}


def ready_seconds(proc: subprocess.Popen[bytes]) -> float:
    ready: float = proc.ready_s  # type: ignore[attr-defined]
    return ready


def block_order(servers: list[str], block: int) -> list[str]:
    """A, B then B, A: alternate the order so drift during a round hits both alike."""
    return servers if block % 2 == 0 else servers[::-1]


def start_all(
    starters: dict[str, Starter], project: Path
) -> dict[str, tuple[subprocess.Popen[bytes], int]]:
    running: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for name, start in starters.items():
            port = free_port()
            running[name] = (start(project, port), port)
    except BaseException:
        stop_all(running)
        raise
    return running


def stop_all(running: dict[str, tuple[subprocess.Popen[bytes], int]]) -> None:
    for proc, _ in running.values():
        stop_process(proc)


def measure_round(starters: dict[str, Starter], args: argparse.Namespace) -> dict[str, Any]:
    """One round: every server up at once, measured in alternating blocks.

    CPU is each server's own process tree (server and model workers), counted
    only while that server is being measured.
    """
    names = list(starters)
    seq_cpu = {name: 0.0 for name in names}
    thr_cpu = {name: 0.0 for name in names}
    running = start_all(starters, SYNC_PROJECT)
    sync_ready = {name: ready_seconds(proc) for name, (proc, _) in running.items()}
    samplers: dict[str, SequentialSampler] = {}
    try:
        for name, (_, port) in running.items():
            samplers[name] = SequentialSampler(HOST, port, "/predictions", BODY)
            samplers[name].warm(args.warmup)
        per_block = max(1, args.requests // args.blocks)
        for block in range(args.blocks):
            for name in block_order(names, block):
                pid = running[name][0].pid
                before = tree_cpu_seconds(pid)
                samplers[name].run(per_block)
                seq_cpu[name] += sum(cpu_delta(before, tree_cpu_seconds(pid)).values())
    finally:
        for sampler in samplers.values():
            sampler.close()
        stop_all(running)
    seq = {name: sampler.result() for name, sampler in samplers.items()}

    running = start_all(starters, ASYNC_PROJECT)
    async_ready = {name: ready_seconds(proc) for name, (proc, _) in running.items()}
    parts: dict[str, list[ThroughputResult]] = {name: [] for name in names}
    try:
        for _, port in running.values():
            # A short warm-up so first-request costs stay out of the windows.
            throughput(HOST, port, "/predictions", BODY, args.concurrency, 1, args.client)
        window = max(1.0, round(args.duration / args.blocks))  # wrk takes whole seconds
        for block in range(args.blocks):
            for name in block_order(names, block):
                proc, port = running[name]
                before = tree_cpu_seconds(proc.pid)
                parts[name].append(
                    throughput(
                        HOST, port, "/predictions", BODY, args.concurrency, window, args.client
                    )
                )
                thr_cpu[name] += sum(cpu_delta(before, tree_cpu_seconds(proc.pid)).values())
    finally:
        stop_all(running)
    return {
        name: {
            "seq": seq[name],
            "thr": merge_throughput(parts[name]),
            "ready": (sync_ready[name], async_ready[name]),
            "cpu": {"sequential": seq_cpu[name], "throughput": thr_cpu[name]},
        }
        for name in names
    }


def record(server: str, round_no: int, m: dict[str, Any]) -> dict[str, Any]:
    seq: SequentialResult = m["seq"]
    thr: ThroughputResult = m["thr"]
    ready = m["ready"]
    seq_cpu = m["cpu"]["sequential"]
    thr_cpu = m["cpu"]["throughput"]
    return {
        "server": server,
        "round": round_no,
        "load_avg_1m": os.getloadavg()[0],
        "sequential": asdict(seq) | {"non_200": seq.non_200},
        "throughput": asdict(thr)
        | {
            "ok_per_s": thr.ok_per_s,
            "total_per_s": thr.total_per_s,
            "non_200": thr.non_200,
            "status_409": thr.statuses.get(409, 0),
        },
        "ready_s": {"sync": ready[0], "async": ready[1]},
        # Server + worker CPU per measured request (all replies, 409s included).
        "cpu_us_per_request": {
            "sequential": 1e6 * seq_cpu / max(1, seq.n),
            "throughput": 1e6 * thr_cpu / max(1, thr.total),
            "throughput_per_200": 1e6 * thr_cpu / max(1, thr.statuses.get(200, 0)),
        },
        "cpu_s": m["cpu"],
    }


def ratios(cog: dict[str, Any], vendo: dict[str, Any]) -> dict[str, float]:
    return {
        "latency_median": vendo["sequential"]["median_ms"] / cog["sequential"]["median_ms"],
        "latency_p99": vendo["sequential"]["p99_ms"] / cog["sequential"]["p99_ms"],
        "ms_per_ok": vendo["sequential"]["ms_per_ok"] / cog["sequential"]["ms_per_ok"],
        "throughput_ok": vendo["throughput"]["ok_per_s"] / cog["throughput"]["ok_per_s"],
    }


def fmt_statuses(statuses: dict[Any, int]) -> str:
    others = {int(k): v for k, v in statuses.items() if int(k) != 200}
    return ", ".join(f"{k}×{v}" for k, v in sorted(others.items())) or "none"


def markdown(results: list[dict[str, Any]], round_ratios: list[dict[str, float]]) -> str:
    lines = [
        "| round | server | load 1m | seq median ms | seq p99 ms | seq non-200 "
        "| seq ms per 200 | c=8 200/s | c=8 p99 ms | c=8 non-200 | CPU µs/seq req "
        "| CPU µs per c=8 200 | ready s (sync/async) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s, t = r["sequential"], r["throughput"]
        lines.append(
            f"| {r['round']} | {r['server']} | {r['load_avg_1m']:.2f} | {s['median_ms']:.3f} "
            f"| {s['p99_ms']:.3f} | {fmt_statuses(s['statuses'])} | {s['ms_per_ok']:.3f} "
            f"| {t['ok_per_s']:.0f} "
            f"| {t['p99_ms']:.2f} | {fmt_statuses(t['statuses'])} "
            f"| {r['cpu_us_per_request']['sequential']:.0f} "
            f"| {r['cpu_us_per_request']['throughput_per_200']:.0f} "
            f"| {r['ready_s']['sync']:.2f} / {r['ready_s']['async']:.2f} |"
        )
    if round_ratios:
        lines += [
            "",
            "| round | Vendo/Cog seq median | Vendo/Cog seq p99 | Vendo/Cog seq ms per 200 "
            "| Vendo/Cog c=8 200/s |",
            "|---|---|---|---|---|",
        ]
        for i, q in enumerate(round_ratios, 1):
            lines.append(
                f"| {i} | {q['latency_median']:.2f} | {q['latency_p99']:.2f} "
                f"| {q['ms_per_ok']:.2f} | {q['throughput_ok']:.2f} |"
            )
        med = summary(round_ratios)
        lines.append(
            f"| **median** | **{med['latency_median']:.2f}** | **{med['latency_p99']:.2f}** "
            f"| **{med['ms_per_ok']:.2f}** | **{med['throughput_ok']:.2f}** |"
        )
    return "\n".join(lines)


def summary(round_ratios: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(q[key] for q in round_ratios) for key in round_ratios[0]}


def environment(cog_python: Path, vendo_python: Path | None, vendo_rev: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "cog_venv": cog_versions(cog_python),
        "client_python": platform.python_version(),
    }
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        info["wrk"] = (out.stdout or out.stderr).split("\n")[0]
    if vendo_python is not None:
        rev = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        )
        info["repo_head"] = rev.stdout.strip()
        info["vendo_measured"] = vendo_rev
    return info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=50, help="sequential warm-up requests")
    parser.add_argument("--requests", type=int, default=500, help="sequential measured requests")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--duration", type=float, default=8.0, help="throughput seconds per server and round"
    )
    parser.add_argument(
        "--blocks",
        type=int,
        default=4,
        help="each round splits the requests and the duration into this many alternating blocks",
    )
    parser.add_argument("--client", choices=["auto", "wrk", "asyncio"], default="auto")
    parser.add_argument(
        "--servers", default="cog,vendo", help="comma-separated, in round order: cog, vendo"
    )
    parser.add_argument(
        "--vendo-python",
        type=Path,
        default=REPO_ROOT / ".venv" / "bin" / "python",
        help="interpreter with vendo installed",
    )
    parser.add_argument(
        "--vendo-cmd",
        default=DEFAULT_VENDO_CMD,
        help="command template; {python} {project} {port} {host} are filled in",
    )
    parser.add_argument(
        "--vendo-rev",
        default="HEAD",
        help="commit of src/vendo to measure (exported to .bench), or 'worktree'",
    )
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "serve_model_bench.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    cog_python = ensure_cog_venv()
    starters: dict[str, Starter] = {}
    vendo_rev = ""
    for name in servers:
        if name == "cog":
            starters[name] = cog_starter(cog_python)
        elif name == "vendo":
            src, vendo_rev = vendo_snapshot(args.vendo_rev)
            starters[name] = vendo_starter(
                args.vendo_python, args.vendo_cmd, args.ready_timeout, src
            )
        else:
            sys.exit(f"unknown server {name!r}")
    env = environment(cog_python, args.vendo_python if "vendo" in starters else None, vendo_rev)
    print(f"environment: {json.dumps(env)}", flush=True)
    results: list[dict[str, Any]] = []
    round_ratios: list[dict[str, float]] = []
    for round_no in range(1, args.rounds + 1):
        by_server: dict[str, dict[str, Any]] = {}
        measured = measure_round(starters, args)
        for name in servers:
            m = measured[name]
            seq, thr = m["seq"], m["thr"]
            row = record(name, round_no, m)
            by_server[name] = row
            results.append(row)
            print(
                f"round {round_no} {name}: seq median {seq.median_ms:.3f} ms p99 "
                f"{seq.p99_ms:.3f} ms non-200 {seq.non_200}; c={thr.concurrency} "
                f"{thr.ok_per_s:.0f} ok/s, non-200 {thr.non_200} ({thr.tool}); server CPU "
                f"{row['cpu_us_per_request']['sequential']:.0f} us/seq request, "
                f"{row['cpu_us_per_request']['throughput_per_200']:.0f} us per c=8 200",
                flush=True,
            )
        if "cog" in by_server and "vendo" in by_server:
            round_ratios.append(ratios(by_server["cog"], by_server["vendo"]))
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "environment": env,
        "results": results,
        "ratios": round_ratios,
        "median_ratios": summary(round_ratios) if round_ratios else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(markdown(results, round_ratios))
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
