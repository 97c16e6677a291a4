"""``vendo predict`` and ``vendo serve-model`` as real subprocesses."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

FIXTURES = Path(__file__).parent.parent / "fixtures"


def vendo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vendo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_predict_prints_the_output(tmp_path: Path) -> None:
    result = vendo("predict", str(FIXTURES / "srv_tiny"), "-i", "name=world", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello world\n"
    result = vendo(
        "predict",
        str(FIXTURES / "srv_tiny"),
        "--json",
        '{"name": "x", "shout": true}',
        cwd=tmp_path,
    )
    assert result.stdout == "HELLO X\n"


def test_predict_json_output_and_files(tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"jpeg!")
    result = vendo(
        "predict",
        str(FIXTURES / "srv_files"),
        "-i",
        f"image=@{image}",
        "-i",
        "many=@" + str(image),
        "-i",
        "handle=data:text/plain,abc",
        "-i",
        "out_bytes=3",
        "-o",
        "out",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["name"] == "photo.jpg" and output["size"] == 5 and output["handle"] == 3
    written = tmp_path / output["file"]
    assert written == tmp_path / "out" / "big.bin"
    assert written.read_bytes() == b"zzz"


def test_predict_iterator_files_in_working_dir(tmp_path: Path) -> None:
    result = vendo("predict", str(FIXTURES / "srv_iter_files"), "-i", "n=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    paths = [Path(p) for p in json.loads(result.stdout)]
    assert paths == [tmp_path / "out-0.txt", tmp_path / "out-1.txt"]
    assert paths[1].read_text() == "file 1"


def test_predict_failures_exit_non_zero(tmp_path: Path) -> None:
    result = vendo("predict", str(FIXTURES / "srv_echo"), "-i", "text=fail", cwd=tmp_path)
    assert result.returncode == 1
    assert "ValueError: asked to fail" in result.stderr
    result = vendo("predict", str(FIXTURES / "srv_echo"), "-i", "count=99", cwd=tmp_path)
    assert result.returncode == 2 and "count" in result.stderr
    result = vendo("predict", str(FIXTURES / "srv_setup_fail"), cwd=tmp_path)
    assert result.returncode == 1 and "weights are missing" in result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_model_command(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vendo",
            "serve-model",
            str(FIXTURES / "srv_echo"),
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            try:
                status = httpx.get(f"{url}/health-check").json()["status"]
            except httpx.HTTPError:
                status = None
            if status == "READY":
                break
            time.sleep(0.1)
        assert status == "READY"
        r = httpx.post(f"{url}/predictions", json={"input": {"text": "cli"}})
        assert r.json()["output"] == "cli"
        assert httpx.post(f"{url}/shutdown").json() == {}
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_predict_streams_a_token_iterator(tmp_path: Path) -> None:
    result = vendo("predict", str(FIXTURES / "srv_tokens"), "-i", "prompt=hello", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "you said hello\n"


def test_commands_without_cog_yaml_fail_clearly(tmp_path: Path) -> None:
    for command in ("serve-model", "predict"):
        result = vendo(command, str(tmp_path), cwd=tmp_path)
        assert result.returncode == 1, command
        assert "cog.yaml" in result.stderr, result.stderr
