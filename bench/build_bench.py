"""Environment build times: Vendo (uv) against pip, on the same machine, in one run.

Measures, with ``vendo build`` run as a command (what a user types):

1. rebuild of an unchanged model (environment and schema reused), several times, as a
   command and as the in-process library call that serve-model/predict make;
2. cold build of a small model needing requests + numpy + pyyaml, with a fresh data
   dir AND a fresh, empty uv cache each round, so every package is downloaded, against
   ``python -m venv`` + ``pip install --no-cache-dir`` of the same packages with the
   same interpreter (pip's cache is off for the same reason);
3. a new environment for new requirements with uv's cache warm (packages downloaded
   once before, as on a machine that has built other models).

The rounds alternate the order of Vendo and pip so that network drift hits both.
Vendo's cold build does more than the pip baseline: it also seeds pip into the venv,
copies Vendo's runtime in and imports the model to extract its OpenAPI schema.

    .venv/bin/python bench/build_bench.py [--rounds 3] [--python 3.12]

Results: a table on stdout and ``.bench/build_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDO = [sys.executable, "-m", "vendo"]
PACKAGES = ["requests", "numpy", "pyyaml"]

PREDICTOR = """\
import numpy
import requests
import yaml
from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def predict(self, n: int = Input(default=3)) -> str:
        return yaml.safe_dump({"sum": int(numpy.arange(n).sum())})
"""


def make_model(root: Path, python: str, packages: list[str]) -> Path:
    root.mkdir(parents=True)
    (root / "predict.py").write_text(PREDICTOR)
    (root / "requirements.txt").write_text("\n".join(packages) + "\n")
    (root / "cog.yaml").write_text(
        f'build:\n  python_version: "{python}"\n  python_requirements: requirements.txt\n'
        'predict: "predict.py:Predictor"\n'
    )
    return root


def timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    started = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return elapsed


def vendo_build(project: Path, data_dir: Path, uv_cache: Path | None) -> float:
    env = dict(os.environ)
    env["VENDO_DATA_DIR"] = str(data_dir)
    if uv_cache is not None:
        env["UV_CACHE_DIR"] = str(uv_cache)
    return timed([*VENDO, "build", str(project)], env)


def pip_build(interpreter: str, venv: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    started = time.perf_counter()
    timed([interpreter, "-m", "venv", str(venv)], env)
    timed([str(venv / "bin" / "pip"), "install", "--no-cache-dir", *PACKAGES], env)
    return time.perf_counter() - started


def find_interpreter(python: str) -> str:
    import uv

    from vendo.envs.python import find_python

    interpreter, _ = find_python(python, uv=uv.find_uv_bin(), download=False)
    return str(interpreter.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rebuilds", type=int, default=5)
    parser.add_argument("--python", default="3.12")
    args = parser.parse_args()
    interpreter = find_interpreter(args.python)
    out_dir = ROOT / ".bench"
    out_dir.mkdir(exist_ok=True)
    results: dict[str, list[float]] = {
        "rebuild": [],
        "rebuild_library": [],
        "vendo_cold": [],
        "pip_cold": [],
        "vendo_warm": [],
    }

    with tempfile.TemporaryDirectory(prefix="vendo-build-bench-") as scratch:
        work = Path(scratch)
        model = make_model(work / "model", args.python, PACKAGES)
        shared_cache = work / "uv-cache-warm"
        for i in range(args.rounds):
            order = ["vendo", "pip"] if i % 2 == 0 else ["pip", "vendo"]
            for who in order:
                if who == "vendo":
                    cache = work / f"uv-cache-cold-{i}"
                    seconds = vendo_build(model, work / f"data-cold-{i}", cache)
                    results["vendo_cold"].append(seconds)
                    shutil.rmtree(cache, ignore_errors=True)
                else:
                    results["pip_cold"].append(pip_build(interpreter, work / f"venv-{i}"))
            print(
                f"round {i + 1}: vendo {results['vendo_cold'][-1]:.2f} s, "
                f"pip {results['pip_cold'][-1]:.2f} s",
                file=sys.stderr,
            )

        # Warm uv cache, new environment: fill the cache once, then build in fresh data dirs.
        vendo_build(model, work / "data-fill", shared_cache)
        for i in range(args.rounds):
            results["vendo_warm"].append(vendo_build(model, work / f"data-warm-{i}", shared_cache))

        # Unchanged model, environment and schema already there.
        data = work / "data-fill"
        for _ in range(args.rebuilds):
            results["rebuild"].append(vendo_build(model, data, shared_cache))
        # The same through the library call that serve-model and predict make.
        from vendo.config import Settings
        from vendo.envs import build_project

        settings = Settings(data_dir=data)
        for _ in range(args.rebuilds):
            started = time.perf_counter()
            build_project(model, settings, uv_cache_dir=shared_cache)
            results["rebuild_library"].append(time.perf_counter() - started)

    summary = {
        name: {"median_s": round(statistics.median(v), 3), "runs_s": [round(x, 3) for x in v]}
        for name, v in results.items()
    }
    summary["meta"] = {  # type: ignore[assignment]
        "python": args.python,
        "packages": PACKAGES,
        "cpus": os.cpu_count(),
        "command": "vendo build DIR (subprocess, includes CLI start-up)",
    }
    (out_dir / "build_bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    labels = {
        "rebuild": "rebuild, unchanged model (`vendo build`)",
        "rebuild_library": "rebuild, unchanged model (`build_project()` in process)",
        "vendo_cold": "cold build, empty uv cache (`vendo build`)",
        "pip_cold": "cold venv + `pip install --no-cache-dir`",
        "vendo_warm": "new environment, warm uv cache (`vendo build`)",
    }
    print(f"| case ({' + '.join(PACKAGES)}, Python {args.python}) | median | runs |")
    print("|---|---|---|")
    for name, label in labels.items():
        runs = ", ".join(f"{x:.2f}" for x in results[name])
        print(f"| {label} | {statistics.median(results[name]):.2f} s | {runs} |")


if __name__ == "__main__":
    main()
