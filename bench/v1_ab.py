"""Two commits of ``vendo serve`` side by side: CPU per sequential sync prediction.

For checking a change to the sync path against the commit before it, without Cog: the
two servers run at once, each on a fresh data dir with ``echo_sync`` pushed and warmed,
and the work is split into blocks of sequential ``POST /v1/predictions`` (``Prefer:
wait``) measured in alternating order (A, B, then B, A, ...) so that load from elsewhere
hits both alike. The figure is CPU (user + system of each server and its runner child)
per successful prediction, as in ``v1_bench.py``; the summary is the median of each
side's blocks, and B/A, then the median latency of each side. Instances of one build
differ by a few percent from one start to the next: run it twice with the commits
swapped before trusting a small difference.

    .venv/bin/python bench/v1_ab.py HEAD~1 HEAD --blocks 24 --requests 600
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev_a", help="commit of side A (or 'worktree')")
    parser.add_argument("rev_b", help="commit of side B (or 'worktree')")
    parser.add_argument("--blocks", type=int, default=24, help="blocks per side")
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
    procs: list[subprocess.Popen[bytes]] = []
    try:
        a, name_a, proc_a = _side(args, args.rev_a)
        procs.append(proc_a)
        b, name_b, proc_b = _side(args, args.rev_b)
        procs.append(proc_b)
        runs = {name: Sequential(t) for name, t in (("A", a), ("B", b))}
        for run in runs.values():
            run.warm(args.warmup)
        per_block: dict[str, list[float]] = {"A": [], "B": []}
        for block in range(args.blocks):
            for name in ("A", "B") if block % 2 == 0 else ("B", "A"):
                run = runs[name]
                before = run.target.cpu()
                run.run(args.requests)
                after = run.target.cpu()
                spent = (after[0] - before[0]) + (after[1] - before[1])
                per_block[name].append(spent * 1000 / args.requests)
        med = {name: statistics.median(values) for name, values in per_block.items()}
        print(f"A {name_a}: {med['A']:.3f} ms CPU per prediction (median of {args.blocks})")
        print(f"B {name_b}: {med['B']:.3f} ms CPU per prediction")
        print(f"B/A {med['B'] / med['A']:.3f}; per block: " + " ".join(
            f"{vb / va:.2f}" for va, vb in zip(per_block["A"], per_block["B"], strict=True)
        ))  # fmt: skip
        lat = {name: statistics.median(run.samples) for name, run in runs.items()}
        print(f"latency median: A {lat['A']:.3f} ms, B {lat['B']:.3f} ms, B/A "
              f"{lat['B'] / lat['A']:.3f}")  # fmt: skip
        for run in runs.values():
            run.close()
    finally:
        for proc in procs:
            stop_process(proc)


if __name__ == "__main__":
    main()
