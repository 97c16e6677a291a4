"""``cog.Secret`` inputs are never at rest in clear text: a real ``vendo serve`` on
SQLite runs predictions with a secret (``Prefer: wait`` ones written at their end or
when the wait runs out, queued ones, running ones), and ``grep -r`` of the whole data
dir (database, WAL, shared memory, files, the server's log) never finds the secret's
bytes: while the server runs, after a kill -9, after the predictions ended. The model
still gets the real value (it answers its length and SHA-256), and the API shows it
masked. With the key gone, a pending prediction with a secret fails with a clear error."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_v1_support import LiveServer, publish_models, wait_status
from cryptography.fernet import Fernet

pytestmark = pytest.mark.slow

TOKEN = "secrets-token"
MASK = "**********"
TERMINAL = {"succeeded", "failed", "canceled"}


def _found_in(data_dir: Path, secret: str) -> list[str]:
    """The files under ``data_dir`` that hold ``secret``: ``grep -r``, binary files
    searched as text."""
    result = subprocess.run(
        ["grep", "-r", "-l", "-a", "-F", "--", secret, str(data_dir)],
        capture_output=True,
        text=True,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: nothing found
    return result.stdout.split()


def _client(server: LiveServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    )


def _kill(server: LiveServer) -> None:
    """SIGKILL the server, then the runners it started (by their PIDs)."""
    orphans = server.children()
    server.stop(signal.SIGKILL)
    for pid in orphans:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _answer(secret: str) -> str:
    return f"{len(secret)}:{hashlib.sha256(secret.encode()).hexdigest()}"


def test_secret_inputs_are_never_at_rest_in_clear_text(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    versions = publish_models(data_dir, tmp_path / "packages", {"sec": "srv_secret"}, TOKEN)
    version = versions["sec"]
    # the server's own log goes in the data dir too: grep covers it
    server = LiveServer(data_dir, data_dir / "server.log", TOKEN)
    secret = "sk-" + secrets.token_hex(20)

    def create(c: httpx.Client, sleep: float = 0.0, prefer: str | None = None) -> Any:
        r = c.post(
            "/v1/predictions",
            headers={"Prefer": prefer} if prefer else {},
            json={"version": version, "input": {"token": secret, "sleep": sleep}},
        )
        assert r.status_code == 201, r.text
        return r.json()

    server.start()
    try:
        key_file = data_dir / "secrets.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        with _client(server) as c:
            # Prefer: wait, quick: written once, as it ends (the deferred sync path)
            quick = create(c, prefer="wait")
            assert quick["status"] == "succeeded" and quick["output"] == _answer(secret)
            assert quick["input"]["token"] == MASK
            assert c.get(quick["urls"]["get"]).json()["input"]["token"] == MASK
            # a wait that runs out: written mid-run; then one queued behind it
            running = create(c, sleep=30, prefer="wait=1")
            assert running["status"] == "starting"
            assert wait_status(c, running["urls"]["get"], {"processing"})["status"] == "processing"
            queued = create(c)
            assert c.get(queued["urls"]["get"]).json()["status"] == "starting"
            assert (data_dir / "vendo.db-wal").exists() or any(data_dir.glob("*-wal"))
            assert _found_in(data_dir, secret) == []  # while the server runs
        _kill(server)
        assert _found_in(data_dir, secret) == []  # after kill -9

        server.start()  # the queued one runs now, its secret opened with the same key
        with _client(server) as c:
            done = wait_status(c, queued["urls"]["get"], TERMINAL)
            assert done["status"] == "succeeded", done
            assert done["output"] == _answer(secret) and done["input"]["token"] == MASK
            assert c.get(running["urls"]["get"]).json()["status"] == "failed"  # interrupted
            assert _found_in(data_dir, secret) == []  # after they ended

            # The key is lost while a prediction with a secret is pending.
            blocker = create(c, sleep=30)
            assert wait_status(c, blocker["urls"]["get"], {"processing"})["status"] == "processing"
            pending = create(c)
        _kill(server)
        key_file.unlink()
        server.start()  # makes a new key, which cannot open the old one's secrets
        with _client(server) as c:
            lost = wait_status(c, pending["urls"]["get"], TERMINAL)
            assert lost["status"] == "failed"
            assert "secret inputs of this prediction cannot be decrypted" in lost["error"]
            assert str(key_file) in lost["error"]
            # and the next prediction with a secret runs as usual
            again = create(c, prefer="wait")
            assert again["status"] == "succeeded" and again["output"] == _answer(secret)
        assert _found_in(data_dir, secret) == []
    finally:
        server.stop()
    assert _found_in(data_dir, secret) == []
    # the key is not in the database either
    assert _found_in(data_dir / "vendo.db", key_file.read_text().strip()) == []
    Fernet(key_file.read_bytes().strip())  # a valid key


@pytest.mark.parametrize("problem", ["exposed file", "bad setting"])
def test_an_unusable_key_stops_serve_with_one_clear_line(tmp_path: Path, problem: str) -> None:
    import sys

    env = {**os.environ, "VENDO_SECRETS_KEY": "not-a-key"}
    if problem == "exposed file":
        env.pop("VENDO_SECRETS_KEY")
        tmp_path.joinpath("secrets.key").write_bytes(Fernet.generate_key())
        os.chmod(tmp_path / "secrets.key", 0o644)
    result = subprocess.run(
        [sys.executable, "-m", "vendo", "serve", "--data-dir", str(tmp_path), "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    expected = "chmod 600" if problem == "exposed file" else "VENDO_SECRETS_KEY is not a valid"
    assert line.startswith("Error: ") and expected in line
