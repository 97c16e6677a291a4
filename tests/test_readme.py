"""A newcomer walks README.md top to bottom, on a port that is not the default.

Every command comes out of README.md itself, so the README and this test cannot drift:
the quickstart's ``vendo serve --examples`` in a fresh folder, the curl command (real
``curl`` when installed, else the same request with httpx), the Python snippet with the
official ``replicate`` client, ``vendo run``, the greeter of "Package and run your own
model" (``predict``, ``build``, ``push``, ``run``, ``envs``), the push of an example
under a second name, and "Add a second person" (``vendo users``/``orgs`` on the data
dir, then a push and a run with the new user's token). The only edits are the ones a
test machine forces: ``.venv/bin/vendo`` and ``vendo`` are this checkout's command, and
``VENDO_PORT`` is set to a free port (the README says to do that when 5000 is taken).
The install step (``pip install -e .``) is the one this test runs under, so it is not
repeated.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serve_support import clean_env, stop
from support import free_port, until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENDO = Path(sys.executable).parent / "vendo"


def _section(name: str) -> list[tuple[str, str]]:
    text = README.read_text()
    body = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", body, flags=re.S)


def _table_commands(name: str) -> list[str]:
    text = README.read_text()
    body = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(vendo [^`]*)` \|", body, flags=re.M)


def _adapt(command: str) -> str:
    """This checkout's `vendo` for `.venv/bin/vendo` and a bare leading `vendo`."""
    command = command.replace(".venv/bin/vendo", shlex.quote(str(VENDO)))
    return re.sub(r"^vendo ", shlex.quote(str(VENDO)) + " ", command, flags=re.M)


@dataclass
class Newcomer:
    work: Path
    port: int
    url: str
    env: dict[str, str]

    def sh(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", _adapt(command)],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def test_the_readme_keeps_two_set_up_commands() -> None:
    blocks = _section("Quickstart")
    assert [lang for lang, _ in blocks] == ["bash", "bash"]
    (_, serve), (_, tests) = blocks
    assert serve.strip().endswith(".venv/bin/vendo serve --examples")
    assert tests.strip() == "./scripts/test"


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Newcomer]:
    """The quickstart in a fresh folder (the examples beside it, as in a clone), on the
    port the README says to export when 5000 is taken."""
    work = tmp_path_factory.mktemp("newcomer")
    (work / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    port = free_port()
    env = clean_env(VENDO_PORT=str(port), VENDO_ALLOW_NEAREST_PYTHON="true")
    (_, quickstart), _ = _section("Quickstart")
    # the install is the environment this test runs in: the serve command after it
    serve = quickstart.strip().split(" && ")[-1]
    log = (work / "serve.log").open("wb")
    process = subprocess.Popen(
        shlex.split(_adapt(serve)), cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        token_file, record = work / ".vendo" / "api_token", work / ".vendo" / "server.json"
        ready: set[str] = set()

        def examples_ready() -> str | None:
            assert process.poll() is None, (work / "serve.log").read_text()
            if not (token_file.exists() and record.exists()):
                return None
            url = str(json.loads(record.read_text())["url"])
            headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
            for name in {"hello-world", "stream-text"} - ready:
                try:
                    r = httpx.get(f"{url}/v1/models/admin/{name}", headers=headers)
                except httpx.TransportError:
                    continue
                if r.status_code == 200 and r.json()["latest_version"]:
                    ready.add(name)
            return url if ready == {"hello-world", "stream-text"} else None

        url = until(
            examples_ready,
            timeout=600,
            interval=0.5,
            what=lambda: "the examples: " + (work / "serve.log").read_text(),
        )
        assert url == f"http://127.0.0.1:{port}"
        yield Newcomer(work, port, url, env)
    finally:
        stop(process)
        log.close()


def _curl_with_httpx(command: str, newcomer: Newcomer) -> str:
    """The README's curl request sent with httpx: bash expands the words (the token,
    the port), httpx sends them."""
    words = subprocess.run(
        ["bash", "-c", command.replace("curl ", "printf '%s\\0' ", 1)],
        cwd=newcomer.work, env=newcomer.env, capture_output=True, text=True, check=True,
    ).stdout.split("\0")[:-1]  # fmt: skip
    method, url, headers, data = "GET", "", {}, None
    it = iter(words)
    for word in it:
        if word == "-X":
            method = next(it)
        elif word == "-H":
            key, _, value = next(it).partition(":")
            headers[key.strip()] = value.strip()
        elif word == "-d":
            data = next(it)
        elif not word.startswith("-"):
            url = word
    return httpx.request(method, url, headers=headers, content=data, timeout=120).text


def test_a_newcomer_walks_the_readme(newcomer: Newcomer) -> None:
    # --- Call a model: curl, the official Python client, vendo run --------------------
    blocks = _section("Call a model")
    assert [lang for lang, _ in blocks] == ["bash", "python", "bash"]
    (_, curl), (_, python), (_, cli) = blocks
    if shutil.which("curl"):
        done = newcomer.sh(curl)
        assert done.returncode == 0, done.stderr
        reply = done.stdout
    else:
        reply = _curl_with_httpx(curl, newcomer)
    prediction = json.loads(reply)
    assert prediction["status"] == "succeeded", prediction
    assert prediction["output"] == "hello Vendo"

    done = subprocess.run(
        [sys.executable, "-c", python],
        cwd=newcomer.work, env=newcomer.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["hello Python", "one two three"]

    # no VENDO_URL: vendo run finds the server on its port by itself
    done = newcomer.sh(cli, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hello CLI"

    # --- Package and run your own model: the greeter ----------------------------------
    blocks = _section("Package and run your own model")
    greeter = newcomer.work / "greeter"
    greeter.mkdir()
    for _, body in blocks[:2]:
        first, _, rest = body.partition("\n")
        assert first.startswith("# "), body  # the file's name, as its first line says
        (greeter / first[2:].strip()).write_text(body)
    commands = {c.split()[1]: c for c in _table_commands("Package and run your own model")}
    assert sorted(commands) == ["build", "envs", "predict", "push", "run", "serve-model"]
    expected = {
        "predict": "hello world",
        "build": None,
        "push": None,
        "run": "hello world",
        "envs": None,
    }  # serve-model is a server of its own: its own tests cover it (tests/api_cog)
    for name, output in expected.items():
        done = newcomer.sh(commands[name])
        assert done.returncode == 0, f"{commands[name]}:\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        if output is not None:
            assert done.stdout.strip() == output, (commands[name], done.stdout)

    # --- an example pushed under a second name, and run -------------------------------
    (_, again) = blocks[2]
    push, run = again.strip().splitlines()
    done = newcomer.sh(push)
    assert done.returncode == 0, done.stderr
    done = newcomer.sh(run, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hello again"

    # --- Add a second person: a user and an organization, a push and a run with the
    # new user's token (the block is one script: its variable carries to the next line)
    ((lang, team),) = _section("Add a second person")
    assert lang == "bash"
    done = newcomer.sh("set -e\n" + team, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "hello team"
    users = newcomer.sh("vendo users list").stdout.split()
    assert "alice" in users
