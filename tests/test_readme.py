"""The README's "Call a model" snippets work verbatim against `vendo serve --examples`.

The only edits are the ones a second server on a test machine forces: the port (the
README uses the default, 5000) and the path of the `vendo` command.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import free_port, until

pytestmark = pytest.mark.slow  # `vendo serve --examples` builds every example's environment

README = Path(__file__).resolve().parents[1] / "README.md"
VENDO = Path(sys.executable).parent / "vendo"


def _section(name: str) -> list[tuple[str, str]]:
    text = README.read_text()
    body = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", body, flags=re.S)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    workdir = tmp_path_factory.mktemp("readme")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VENDO_", "REPLICATE_"))}
    log = (workdir / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(VENDO), "serve", "--examples", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        token_file = workdir / ".vendo" / "api_token"
        ready: set[str] = set()

        def examples_ready() -> bool:
            assert proc.poll() is None, (workdir / "serve.log").read_text()
            if not token_file.exists():
                return False
            headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
            for name in {"hello-world", "stream-text"} - ready:
                try:
                    r = httpx.get(
                        f"http://127.0.0.1:{port}/v1/models/admin/{name}", headers=headers
                    )
                except httpx.TransportError:
                    continue
                if r.status_code == 200 and r.json()["latest_version"]:
                    ready.add(name)
            return ready == {"hello-world", "stream-text"}

        until(
            examples_ready,
            timeout=600,
            interval=0.5,
            what=lambda: "the examples: " + (workdir / "serve.log").read_text(),
        )
        yield workdir, port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _adapt(snippet: str, port: int) -> str:
    return snippet.replace("127.0.0.1:5000", f"127.0.0.1:{port}").replace(
        ".venv/bin/vendo", str(VENDO)
    )


def test_call_a_model_snippets_run_verbatim(server: tuple[Path, int]) -> None:
    workdir, port = server
    blocks = _section("Call a model")
    assert [lang for lang, _ in blocks] == ["bash", "python", "bash"]
    (_, curl), (_, python), (_, cli) = blocks
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VENDO_", "REPLICATE_"))}

    done = subprocess.run(
        ["bash", "-c", _adapt(curl, port)], cwd=workdir, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    prediction = json.loads(done.stdout)
    assert prediction["status"] == "succeeded"
    assert prediction["output"] == "hello Vendo"

    done = subprocess.run(
        [sys.executable, "-c", _adapt(python, port)],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["hello Python", "one two three"]

    env["VENDO_URL"] = f"http://127.0.0.1:{port}"
    done = subprocess.run(
        ["bash", "-c", _adapt(cli, port)],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hello CLI"
