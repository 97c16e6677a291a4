"""The client commands find ``vendo serve`` and fail in one line when it is not there;
``vendo serve`` fails in one line, changing nothing, when it cannot start (issue 16,
items 1 and 7). Everything runs as a user types it: child processes, real servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import click
import httpx
import pytest

from serve_support import clean_env, serving, vendo
from support import free_port, http_server, stop_process

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOKEN = "cli-test-token"

# Every command that talks to a server (it has --url), with arguments that would work
# against a running one. test_every_client_command_is_listed keeps this complete.
CLIENT_COMMANDS: dict[str, list[str]] = {
    "run": ["run", "admin/hello-world", "-i", "text=x"],
    "push": ["push", str(FIXTURES / "cli_named_file"), "admin/named"],
    "train": ["train", "admin/text-classifier", "-d", "admin/mine", "-i", "examples=x"],
    "deployments": ["deployments", "list"],
    "usage": ["usage", "--since", "7d", "--by", "model"],
}


def _one_line_error(done: subprocess.CompletedProcess[str], connected: bool = False) -> str:
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    if connected:  # the upload had begun: push said what it sends
        lines = [line for line in lines if not line.startswith("Packed ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_every_client_command_is_listed() -> None:
    from vendo.cli import cli

    ctx = click.Context(cli)
    with_url = []
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        if command is not None and any(p.name == "url" for p in command.params):
            with_url.append(name)
    assert sorted(with_url) == sorted(CLIENT_COMMANDS)


@pytest.mark.parametrize("found", ["VENDO_URL", "--url", "server.json"])
@pytest.mark.parametrize("command", sorted(CLIENT_COMMANDS))
def test_client_command_against_a_stopped_server(command: str, found: str, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = clean_env(VENDO_API_TOKEN=TOKEN)
    args = list(CLIENT_COMMANDS[command])
    if found == "VENDO_URL":
        env["VENDO_URL"] = url
    elif found == "--url":
        args[1:1] = ["--url", url]
    else:
        # a record whose PID is alive (this test) but whose server is gone
        (tmp_path / ".vendo").mkdir()
        record = {"url": url, "pid": os.getpid()}
        (tmp_path / ".vendo" / "server.json").write_text(json.dumps(record))
    line = _one_line_error(vendo(*args, cwd=tmp_path, env=env, timeout=60))
    assert line.startswith(f"Error: cannot reach the Vendo server at {url} (connection refused)")
    assert "VENDO_URL" in line
    if found == "server.json":
        assert "server.json" in line


class _PlainHTTP(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def plain_http() -> Iterator[int]:
    with http_server(_PlainHTTP) as server:
        yield int(server.server_address[1])


@pytest.mark.parametrize("command", sorted(CLIENT_COMMANDS))
def test_tls_error_is_one_line(command: str, plain_http: int, tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{plain_http}"  # TLS spoken to a plain HTTP server
    env = clean_env(VENDO_API_TOKEN=TOKEN, VENDO_URL=url)
    line = _one_line_error(vendo(*CLIENT_COMMANDS[command], cwd=tmp_path, env=env, timeout=60))
    assert f"cannot reach the Vendo server at {url} (TLS error" in line


class _HangUp:
    """Accepts connections and closes them at once (a server dying mid-request), or
    keeps them open without a word (a hung one)."""

    def __init__(self, answer: bool) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.answer = answer
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.recv(65536)
            if self.answer:
                conn.close()
            else:
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.mark.parametrize("command", sorted(CLIENT_COMMANDS))
def test_server_hanging_up_is_one_line(command: str, tmp_path: Path) -> None:
    server = _HangUp(answer=True)
    try:
        url = f"http://127.0.0.1:{server.port}"
        env = clean_env(VENDO_API_TOKEN=TOKEN, VENDO_URL=url)
        done = vendo(*CLIENT_COMMANDS[command], cwd=tmp_path, env=env, timeout=60)
    finally:
        server.close()
    line = _one_line_error(done, connected=True)
    assert f"cannot reach the Vendo server at {url} (the connection broke off" in line


def test_timeout_is_one_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vendo.cli.remote import api_client

    server = _HangUp(answer=False)
    monkeypatch.setenv("VENDO_API_TOKEN", TOKEN)
    url = f"http://127.0.0.1:{server.port}"
    try:
        with (
            api_client(url, timeout=httpx.Timeout(0.5)) as client,
            pytest.raises(click.ClickException) as caught,
        ):
            client.get("/v1/models")
    finally:
        server.close()
    assert caught.value.message.startswith(f"cannot reach the Vendo server at {url} (timed out")
    assert "\n" not in caught.value.message


def test_a_stale_record_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vendo.cli.remote import find_server, recorded_server

    monkeypatch.delenv("VENDO_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    record = {"url": "http://127.0.0.1:5999", "pid": int(gone.stdout)}
    (tmp_path / "server.json").write_text(json.dumps(record))
    assert recorded_server(tmp_path) is None
    assert find_server(None, tmp_path).source == "default"
    # with no server recorded, the default follows VENDO_PORT as `vendo serve` does
    monkeypatch.setenv("VENDO_PORT", "5731")
    assert find_server(None, tmp_path).url == "http://127.0.0.1:5731"
    record["pid"] = os.getpid()
    (tmp_path / "server.json").write_text(json.dumps(record))
    assert find_server(None, tmp_path).url == "http://127.0.0.1:5999"
    monkeypatch.setenv("VENDO_URL", "http://127.0.0.1:6001")  # a setting beats the record
    assert find_server(None, tmp_path).url == "http://127.0.0.1:6001"


def test_client_commands_find_a_server_on_another_port(tmp_path: Path) -> None:
    env = clean_env(VENDO_API_TOKEN=TOKEN)
    record = tmp_path / ".vendo" / "server.json"
    with serving(tmp_path, env, "--port", "0") as (process, url):
        assert json.loads(record.read_text()) == {"url": url, "pid": process.pid}
        assert not url.endswith(":5000")
        # no VENDO_URL, no --url: the 404 comes from the server on the recorded port
        done = vendo("run", "admin/nothing-here", cwd=tmp_path, env=env, timeout=60)
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip() == "Error: 404: model admin/nothing-here not found"
    assert process.returncode is not None
    assert not record.exists()  # a clean stop removes it


def test_a_taken_port_changes_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = int(taken.getsockname()[1])
        data = tmp_path / "data"
        done = vendo(
            "serve", "--port", str(port), "--data-dir", str(data),
            cwd=tmp_path, env=clean_env(), timeout=60,
        )  # fmt: skip
    line = _one_line_error(done)
    assert line.startswith(f"Error: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "--port" in line
    assert "token" not in (done.stdout + done.stderr).lower()
    assert not data.exists()  # no database, no admin, no token
    assert not (tmp_path / ".vendo").exists()


def test_a_bad_tls_certificate_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    data = tmp_path / "data"
    done = vendo(
        "serve", "--port", "0", "--data-dir", str(data), "--ssl-certfile", "cert.pem",
        "--ssl-keyfile", "cert.pem", cwd=tmp_path, env=clean_env(), timeout=60,
    )  # fmt: skip
    line = _one_line_error(done)
    assert line.startswith("Error: cannot load the TLS certificate or key:"), line
    assert not data.exists()


def test_a_failed_start_up_creates_no_admin(tmp_path: Path) -> None:
    data = tmp_path / "data"
    database = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    done = vendo(
        "serve", "--port", "0", "--data-dir", str(data),
        cwd=tmp_path, env=clean_env(VENDO_DATABASE_URL=database), timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, output
    assert "Vendo could not start:" in errors[0] and "Connection refused" in errors[0]
    assert "token" not in output.lower()
    assert not (data / "api_token").exists()
    assert not (data / "server.json").exists()


def test_a_mistyped_command_names_the_closest(tmp_path: Path) -> None:
    done = vendo("serv", cwd=tmp_path, env=clean_env(), timeout=60)
    assert done.returncode == 2
    assert "Error: No such command 'serv'. Did you mean 'serve'?" in done.stderr


def test_a_bad_setting_is_one_line(tmp_path: Path) -> None:
    done = vendo("serve", cwd=tmp_path, env=clean_env(VENDO_PORT="abc"), timeout=60)
    line = _one_line_error(done)
    assert line.startswith("Error: bad setting: VENDO_PORT='abc': Input should be a valid integer")
    assert not (tmp_path / ".vendo").exists()


@pytest.mark.parametrize("how", ["--data-dir", "VENDO_DATA_DIR"])
@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["users", "list"]])
def test_a_data_dir_that_cannot_be_made_is_one_line(
    command: list[str], how: str, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    data = tmp_path / "a-file" / "data"  # under a file: not even root can make it
    env = clean_env(VENDO_DATA_DIR=str(data)) if how == "VENDO_DATA_DIR" else clean_env()
    args = [*command, "--data-dir", str(data)] if how == "--data-dir" else command
    line = _one_line_error(vendo(*args, cwd=tmp_path, env=env, timeout=60))
    assert line.startswith(f"Error: cannot use {tmp_path / 'a-file'}"), line
    assert line.endswith(
        "the data dir must be a folder you can write to (--data-dir, VENDO_DATA_DIR)"
    )


def test_ctrl_c_during_a_push_says_what_reached_the_server(tmp_path: Path) -> None:
    # a server that takes the connection and never answers: the push stays "uploading"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(60)  # a push that never connects fails the test, not hangs it
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        process = subprocess.Popen(
            [sys.executable, "-m", "vendo", "push", str(FIXTURES / "cli_named_file"), "you/named"],
            cwd=tmp_path,
            env=clean_env(VENDO_API_TOKEN=TOKEN, VENDO_URL=url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            connection, _ = listener.accept()  # the upload has begun
            with connection:
                process.send_signal(signal.SIGINT)
                _, err = process.communicate(timeout=60)
        finally:
            stop_process(process)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "Aborted" not in err, err
    assert err.strip().splitlines()[-1] == (
        "Error: interrupted while uploading: nothing reached the server, you/named is unchanged"
    )
