"""``vendo users``, ``vendo orgs`` and ``vendo tokens`` as docs/accounts.md shows them
(issue #11, item 3): its command blocks run verbatim in a fresh folder, tokens are
printed once and never listed, and expected failures are one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from serve_support import clean_env, vendo

DOC = Path(__file__).resolve().parents[2] / "docs" / "accounts.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def _env() -> dict[str, str]:
    # `vendo` on PATH is this checkout's, as for a person who installed it
    return clean_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def _sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "set -e\n" + script],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_docs_add_a_second_person_and_revoke_a_token(tmp_path: Path) -> None:
    add, _push, revoke, _curl = _blocks("bash")
    done = _sh(add, tmp_path)
    assert done.returncode == 0, done.stderr
    # bob's first token and his laptop token (printed once each), then the two lists
    made = [line for line in done.stdout.splitlines() if line.startswith("r8_")]
    assert len(made) == 2
    lists = done.stdout.split("ID  NAME", 1)[1]
    assert "laptop  acme" in lists and "r8_" not in lists
    assert re.search(r"^bob\b", lists, flags=re.M)
    done = _sh(revoke + "vendo tokens list bob\n", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "laptop" not in done.stdout and "first" in done.stdout


def test_a_token_is_printed_once_on_stdout(tmp_path: Path) -> None:
    env = clean_env(VENDO_DATA_DIR=str(tmp_path / "data"))
    made = vendo("users", "create", "alice", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert re.fullmatch(r"r8_\S+", token) and token not in made.stderr
    listed = vendo("tokens", "list", "alice", cwd=tmp_path, env=env)
    assert token not in listed.stdout and "first" in listed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "create", "no spaces"], "username: must be 1 to 64 letters"),
        (["tokens", "create", "nobody"], "no user named 'nobody'"),
        (["tokens", "revoke", "999"], "token 999 not found"),
        (["orgs", "create", "acme", "--owner", "nobody"], "no user named 'nobody'"),
        (["orgs", "add-member", "nowhere", "alice"], "no organization named 'nowhere'"),
        (["tokens", "create", "alice", "--org", "alice"], "no organization named 'alice'"),
    ],
)
def test_an_expected_failure_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    env = clean_env(VENDO_DATA_DIR=str(tmp_path / "data"))
    assert vendo("users", "create", "alice", cwd=tmp_path, env=env).returncode == 0
    done = vendo(*args, cwd=tmp_path, env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"Error: {message}")
