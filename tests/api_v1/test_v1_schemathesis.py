"""A bounded schemathesis run against a live ``vendo serve``: every operation of the
served OpenAPI document is fuzzed (examples, coverage, fuzzing and stateful phases,
fixed seed) and must give no server error and no answer outside the document.

The server is a real child process on loopback with two fixture models pushed, so that
predictions really run; schemathesis runs as its own process (``st run``) with the
hooks of ``schemathesis_hooks.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_v1_support import LiveServer, publish_models, wait_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TOKEN = "fuzz-admin-token"
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
SEED = 20261206
MAX_EXAMPLES = 25  # per operation and phase: 40-70 s on two shared cores
CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "unsupported_method",
    "allow_header_conformance",
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    root = tmp_path_factory.mktemp("fuzz")
    versions = publish_models(
        root / "data",
        root / "packages",
        {"inputs": "fuzz_inputs", "tokens": "fuzz_tokens"},
        TOKEN,
    )
    server = LiveServer(root / "data", root / "server.log", TOKEN)
    server.start()
    try:
        yield server, versions
    finally:
        server.stop()


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    live: tuple[LiveServer, dict[str, str]], tmp_path: Path
) -> None:
    server, versions = live
    args = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
        "--header", f"Authorization: Bearer {TOKEN}",
        "--checks", ",".join(CHECKS),
        "--phases", "examples,coverage,fuzzing,stateful",
        "--seed", str(SEED),
        "--generation-database", "none",
        "--max-examples", str(MAX_EXAMPLES),
        "--workers", "1",
        # above Prefer's 60 s, should a fuzzed header ever ask for a wait
        "--request-timeout", "70",
        "--no-color",
    ]  # fmt: skip
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(HOOKS),
        "VENDO_FUZZ_MODELS": json.dumps(versions),
        "VENDO_FUZZ_OWNER": "admin",
    }
    run = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400, check=False
    )
    output = run.stdout[-15000:] + run.stderr[-3000:]
    assert run.returncode == 0, output + "\n--- server log ---\n" + _server_errors(server)
    # a normal prediction still succeeds after all that (behind what the fuzzing queued)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(
        f"{server.url}/v1/predictions",
        headers=auth,
        json={"version": versions["inputs"], "input": {"text": "after"}},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    prediction = _finished(r.json()["urls"]["get"], auth)
    assert prediction["status"] == "succeeded", prediction
    assert prediction["output"] == "after|1|0.5|False|fast"
    # the hooks took the fuzzing past the 404s: fuzzed predictions ran on both models
    listed = httpx.get(f"{server.url}/v1/predictions", headers=auth, timeout=30).json()
    ran = {p["model"] for p in listed["results"] if p["status"] == "succeeded"}
    assert ran >= {"admin/inputs", "admin/tokens"}, listed["results"][:3]


def _finished(url: str, auth: dict[str, str], timeout: float = 120) -> dict[str, Any]:
    with httpx.Client(headers=auth, timeout=30) as client:
        return wait_status(client, url, {"succeeded", "failed", "canceled"}, timeout)


def _server_errors(server: LiveServer) -> str:
    text = server.log_path.read_text(errors="replace")
    lines = [i for i, line in enumerate(text.splitlines()) if "Traceback" in line]
    return "\n".join(text.splitlines()[lines[0] : lines[0] + 60]) if lines else text[-3000:]
