"""Streaming and cancel latency of the platform (``vendo serve``), on a warm runner.

    .venv/bin/python bench/stream_bench.py [--tokens 200] [--predictions 5] [--cancels 5]
                                           [--cancel-grace 10] [--js]

- **yield -> SSE**: the ``sse_tokens`` fixture yields ``repr(time.time())`` as each token
  (``stamp=True``, ``--pause`` apart, after a 0.3 s delay so the client is connected);
  the client subtracts that from its own clock when the ``output`` event arrives (same
  machine, same clock). Measured with a raw httpx SSE reader, the
  official Python client (``replicate.stream``) and, with ``--js``, the official JS client.
- **cancel**: time from sending ``POST /cancel`` to the ``done`` event on the prediction's
  stream, for a model sleeping in Python (cooperative) and for one stuck in libc
  ``sleep()`` with every signal blocked (runner killed after ``--cancel-grace`` seconds).

The server and models come from the streaming tests' harness
(``tests/streaming/streaming_support.py``): models are registered straight into the
store, with this interpreter and Vendo's runtime as their environment. Results go to
stdout and ``.bench/stream_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "streaming"))

from streaming_support import TOKEN, Server, register_models, sse_events  # noqa: E402

MODELS = {"tokens": "sse_tokens", "coop": "cancel_cooperative", "stuck": "cancel_stuck"}


def summary(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 3),
        "p90_ms": round(pct(0.9), 3),
        "p99_ms": round(pct(0.99), 3),
        "max_ms": round(ordered[-1], 3),
    }


def inputs(tokens: int, pause: float) -> dict[str, Any]:
    # delay: the first token waits until the client has surely connected, so no token
    # is measured as replayed history
    return {"count": tokens, "stamp": True, "pause": pause, "delay": 0.3}


def raw_sse_delays(server: Server, version: str, tokens: int, pause: float) -> list[float]:
    p = server.create(version, inputs(tokens, pause))
    delays = []
    with httpx.stream("GET", p["urls"]["stream"], timeout=60) as r:
        for event in sse_events(r.iter_lines()):
            if event.get("event") == "output":
                delays.append((time.time() - float(event["data"])) * 1000)
            elif event.get("event") == "done":
                break
    return delays


def python_client_delays(server: Server, version: str, tokens: int, pause: float) -> list[float]:
    import replicate

    client = replicate.Client(api_token=TOKEN, base_url=server.url)
    delays = []
    for event in client.stream(f"admin/tokens:{version}", input=inputs(tokens, pause)):
        if event.event.value == "output":
            delays.append((time.time() - float(str(event))) * 1000)
    return delays


def js_client_delays(server: Server, version: str, tokens: int, pause: float) -> list[float]:
    js = ROOT / "tests" / "js"
    if not (js / "node_modules" / "replicate").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=js, check=True)
    out = subprocess.run(
        [
            "node",
            "stream.mjs",
            "stream",
            f"{server.url}/v1",
            TOKEN,
            f"admin/tokens:{version}",
            json.dumps(inputs(tokens, pause)),
        ],
        cwd=js,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    (events,) = json.loads(out.stdout)["parts"]
    return [e["at"] - float(e["data"]) * 1000 for e in events if e["event"] == "output"]


def cancel_latency(server: Server, version: str, model_input: dict[str, Any]) -> float:
    """Seconds from sending the cancel to the stream's ``done``."""
    p = server.create(version, model_input, stream=True)
    server.wait(p["id"], ("processing",), timeout=120)
    deadline = time.monotonic() + 10
    while "sleep" not in server.get(p["id"])["logs"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the model never reached its blocking call")
        time.sleep(0.01)
    with httpx.stream("GET", p["urls"]["stream"], timeout=120) as r:
        started = time.perf_counter()
        httpx.post(p["urls"]["cancel"], headers=server.headers, timeout=30)
        for event in sse_events(r.iter_lines()):
            if event.get("event") == "done":
                elapsed = time.perf_counter() - started
                if json.loads(event["data"]) != {"reason": "canceled"}:
                    raise RuntimeError(f"not canceled: {event}")
                return elapsed
    raise RuntimeError("stream ended without done")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=200, help="tokens per prediction")
    parser.add_argument(
        "--pause", type=float, default=0.01, help="seconds between tokens (100 tokens/s)"
    )
    parser.add_argument("--predictions", type=int, default=5, help="measured predictions")
    parser.add_argument("--cancels", type=int, default=5, help="cancels of each kind")
    parser.add_argument("--cancel-grace", type=float, default=10.0, help="VENDO_CANCEL_GRACE")
    parser.add_argument("--js", action="store_true", help="also measure the JS client")
    args = parser.parse_args()

    out_dir = ROOT / ".bench"
    out_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        versions = register_models(data_dir, MODELS)
        server = Server(data_dir, env={"VENDO_CANCEL_GRACE": str(args.cancel_grace)})
        server.start()
        results: dict[str, Any] = {"args": vars(args)}
        try:
            tokens = versions["tokens"]
            raw_sse_delays(server, tokens, 20, 0.01)  # warm the runner up
            measures = {"raw httpx SSE": raw_sse_delays, "replicate 1.0.7": python_client_delays}
            if args.js:
                measures["replicate JS 1.4.0"] = js_client_delays
            for name, measure in measures.items():
                delays: list[float] = []
                for _ in range(args.predictions):
                    delays.extend(measure(server, tokens, args.tokens, args.pause))
                results[f"yield->client ({name})"] = summary(delays)
            for kind, version, model_input in (
                ("cooperative", versions["coop"], {"seconds": 600}),
                ("stuck in native code", versions["stuck"], {"seconds": 600}),
            ):
                cancel_latency(server, version, model_input)  # warm (or replace) the runner
                times = [
                    cancel_latency(server, version, model_input) * 1000 for _ in range(args.cancels)
                ]
                results[f"cancel -> done ({kind})"] = summary(times)
        finally:
            server.stop()
    for name, value in results.items():
        print(f"{name}: {value}")
    (out_dir / "stream_bench.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
