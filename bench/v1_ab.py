"""Two commits of ``vendo serve`` side by side: CPU per sequential sync prediction.

For checking a change to the sync path against the commit before it, without Cog: the
two servers run at once, each on a fresh data dir with ``echo_sync`` pushed and warmed,
and the work is split into blocks of sequential ``POST /v1/predictions`` (``Prefer:
wait``) measured in alternating order (A, B, then B, A, ...) so that load from elsewhere
hits both alike. The figure is CPU (user + system of each server and its runner child)
per successful prediction, as in ``v1_bench.py``; the summary is the median of each
side's blocks, and B/A, then the median latency of each side. Instances of one build
differ by up to 10% from one start to the next, so ``--instances K`` starts K fresh
pairs of servers one after the other (the first of each pair alternating), each
measured for ``--blocks`` blocks; the summary takes every block of every pair, and
each pair's own B/A is printed too.

    .venv/bin/python bench/v1_ab.py HEAD~1 HEAD --instances 4 --blocks 12 --requests 400
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import BENCH_DIR, REPO_ROOT, free_port, stop_process
from serve_model_bench import vendo_snapshot
from v1_bench import SYNC_FIXTURE, Sequential, Target, push, start_vendo, warm_vendo

__all__ = ["main"]


def _side(args: argparse.Namespace, rev: str) -> tuple[Target, str, subprocess.Popen[bytes]]:
    src, described = vendo_snapshot(rev)
    base = Path(tempfile.mkdtemp(prefix=f"ab-{described}-", dir=BENCH_DIR))
    port = free_port()
    proc = start_vendo(args.vendo_python, base / "data", port, base / "serve.log", src)
    try:
        target = Target.vendo(proc, port, push(port, SYNC_FIXTURE))
        warm_vendo(target)
    except BaseException:
        stop_process(proc)
        raise
    return target, described, proc


def _pair(
    args: argparse.Namespace, first: str, per_block: dict[str, list[float]],
    latency: dict[str, list[float]],
) -> tuple[str, str, float]:  # fmt: skip
    """One fresh pair of servers, measured in alternating blocks; returns the commits'
    names and this pair's B/A."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        sides: dict[str, tuple[Target, str]] = {}
        for name in (first, "B" if first == "A" else "A"):
            target, described, proc = _side(args, args.rev_a if name == "A" else args.rev_b)
            procs.append(proc)
            sides[name] = (target, described)
        runs = {name: Sequential(sides[name][0]) for name in ("A", "B")}
        for run in runs.values():
            run.warm(args.warmup)
        mine: dict[str, list[float]] = {"A": [], "B": []}
        for block in range(args.blocks):
            for name in ("A", "B") if block % 2 == 0 else ("B", "A"):
                run = runs[name]
                before = run.target.cpu()
                run.run(args.requests)
                after = run.target.cpu()
                spent = (after[0] - before[0]) + (after[1] - before[1])
                mine[name].append(spent * 1000 / args.requests)
        for name, run in runs.items():
            per_block[name] += mine[name]
            latency[name] += run.samples
            run.close()
        ratio = statistics.median(mine["B"]) / statistics.median(mine["A"])
        return sides["A"][1], sides["B"][1], ratio
    finally:
        for proc in procs:
            stop_process(proc)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev_a", help="commit of side A (or 'worktree')")
    parser.add_argument("rev_b", help="commit of side B (or 'worktree')")
    parser.add_argument("--instances", type=int, default=1, help="fresh pairs of servers")
    parser.add_argument("--blocks", type=int, default=24, help="blocks per side and pair")
    parser.add_argument("--requests", type=int, default=600, help="requests per block")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--vendo-python",
        type=Path,
        default=REPO_ROOT / ".venv" / "bin" / "python",
        help="interpreter with vendo installed",
    )
    args = parser.parse_args(argv)
    BENCH_DIR.mkdir(exist_ok=True)
    per_block: dict[str, list[float]] = {"A": [], "B": []}
    latency: dict[str, list[float]] = {"A": [], "B": []}
    pairs = []
    for instance in range(args.instances):
        name_a, name_b, ratio = _pair(args, "A" if instance % 2 == 0 else "B", per_block, latency)
        pairs.append(ratio)
        print(f"pair {instance + 1}: B/A {ratio:.3f}", flush=True)
    med = {name: statistics.median(values) for name, values in per_block.items()}
    blocks = len(per_block["A"])
    print(f"A {name_a}: {med['A']:.3f} ms CPU per prediction (median of {blocks} blocks)")
    print(f"B {name_b}: {med['B']:.3f} ms CPU per prediction")
    print(f"B/A {med['B'] / med['A']:.3f}; pairs: " + " ".join(f"{r:.3f}" for r in pairs))
    lat = {name: statistics.median(samples) for name, samples in latency.items()}
    print(f"latency median: A {lat['A']:.3f} ms, B {lat['B']:.3f} ms, B/A "
          f"{lat['B'] / lat['A']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
