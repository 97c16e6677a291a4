"""``vendo predict`` and ``vendo serve-model`` as real subprocesses.

Both build (or reuse) the model's environment first and run the model inside it. The
module shares one data dir, so the srv_* fixtures (same Python, no requirements) share
one environment, built once; uv's cache is the one tests/envs keeps between runs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import serve_support
from support import children_of, free_port, is_running, until

FIXTURES = Path(__file__).parent.parent / "fixtures"
_ENV: dict[str, str] = {}
# builds (or reuses) a real environment: kept out of the quick local loop
BUILDS = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def data_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    uv_cache = Path(cache.mkdir("vendo-uv-cache")) if cache else tmp_path_factory.mktemp("uv-cache")
    data = tmp_path_factory.mktemp("cli-data")
    _ENV.update(os.environ)
    _ENV.update({"VENDO_DATA_DIR": str(data), "UV_CACHE_DIR": str(uv_cache)})
    yield data
    _ENV.clear()


def vendo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return serve_support.vendo(*args, cwd=cwd, env=_ENV)


@BUILDS
def test_predict_runs_in_the_built_environment(tmp_path: Path, data_dir: Path) -> None:
    # tabulate is in the fixture's requirements and not in Vendo's own venv
    assert importlib.util.find_spec("tabulate") is None
    result = vendo("predict", str(FIXTURES / "int_env_pkg"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["tabulate"] == "0.9.0"
    python = Path(output["python"])
    assert python.is_relative_to(data_dir / "envs"), python
    assert not python.is_relative_to(sys.prefix)
    assert "Environment " in result.stderr  # the build's progress goes to stderr


def test_predict_no_build_runs_on_vendos_interpreter(tmp_path: Path) -> None:
    result = vendo("predict", str(FIXTURES / "int_env_pkg"), "--no-build", cwd=tmp_path)
    assert result.returncode == 1
    assert "No module named 'tabulate'" in result.stderr, result.stderr
    result = vendo(
        "predict", str(FIXTURES / "srv_tiny"), "--no-build", "-i", "name=x", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello x\n"
    assert "Environment " not in result.stderr


@BUILDS
def test_predict_build_failure_shows_the_step_and_its_output(tmp_path: Path) -> None:
    result = vendo("predict", str(FIXTURES / "int_bad_build"), cwd=tmp_path)
    assert result.returncode == 1
    assert "build.run[0] failed (exit status 3)" in result.stderr, result.stderr
    assert "echo preparing-the-tool" in result.stderr  # the command
    assert "frobnicate: not found" in result.stderr  # its output, from the log's tail
    assert "Build log: " in result.stderr
    assert result.stdout == ""


@BUILDS
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


@BUILDS
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


@BUILDS
def test_predict_iterator_files_in_working_dir(tmp_path: Path) -> None:
    result = vendo("predict", str(FIXTURES / "srv_iter_files"), "-i", "n=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    paths = [Path(p) for p in json.loads(result.stdout)]
    assert paths == [tmp_path / "out-0.txt", tmp_path / "out-1.txt"]
    assert paths[1].read_text() == "file 1"


@BUILDS
def test_predict_failures_exit_non_zero(tmp_path: Path) -> None:
    result = vendo("predict", str(FIXTURES / "srv_echo"), "-i", "text=fail", cwd=tmp_path)
    assert result.returncode == 1
    assert "ValueError: asked to fail" in result.stderr
    result = vendo("predict", str(FIXTURES / "srv_echo"), "-i", "count=99", cwd=tmp_path)
    assert result.returncode == 2 and "count" in result.stderr
    result = vendo("predict", str(FIXTURES / "srv_setup_fail"), cwd=tmp_path)
    assert result.returncode == 1 and "weights are missing" in result.stderr


@BUILDS
def test_serve_model_serves_from_the_built_environment(tmp_path: Path, data_dir: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vendo",
            "serve-model",
            str(FIXTURES / "int_env_pkg"),
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def status() -> str | None:
            try:
                return str(httpx.get(f"{url}/health-check").json()["status"])
            except httpx.HTTPError:
                return None

        until(lambda: status() == "READY", timeout=240, what="serve-model to be READY")
        r = httpx.post(f"{url}/predictions", json={"input": {}})
        output = r.json()["output"]
        assert output["tabulate"] == "0.9.0"
        assert Path(output["python"]).is_relative_to(data_dir / "envs")
        assert httpx.post(f"{url}/shutdown").json() == {}
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@BUILDS
def test_predict_streams_a_token_iterator(tmp_path: Path) -> None:
    result = vendo("predict", str(FIXTURES / "srv_tokens"), "-i", "prompt=hello", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "you said hello\n"


def test_commands_without_cog_yaml_fail_clearly(tmp_path: Path) -> None:
    for command in ("serve-model", "predict"):
        result = vendo(command, str(tmp_path), cwd=tmp_path)
        assert result.returncode == 1, command
        assert "cog.yaml" in result.stderr, result.stderr


@pytest.mark.parametrize("phase", ["after a prediction", "during setup"])
def test_serve_model_runner_dies_with_the_server(tmp_path: Path, phase: str) -> None:
    # SIGKILL of `vendo serve-model` leaves neither its runner nor what the model
    # started running, also while the runner is still in a long setup().
    port = free_port()
    env = {**_ENV, "GRANDCHILD_SETUP": "120" if phase == "during setup" else "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "vendo", "serve-model", str(FIXTURES / "plt_grandchild")]
        + ["--port", str(port), "--no-build"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started: list[int] = []
    try:
        url = f"http://127.0.0.1:{port}"

        def status() -> str | None:
            with contextlib.suppress(httpx.HTTPError):
                return str(httpx.get(f"{url}/health-check").json()["status"])
            return None

        now = until(lambda: (s := status()) in ("STARTING", "READY") and s, timeout=60)
        if phase == "after a prediction":
            until(lambda: status() == "READY", timeout=60, what="serve-model to be READY")
            started.append(httpx.post(f"{url}/predictions", json={"input": {}}).json()["output"])
        else:
            assert now == "STARTING"
        started += children_of(process.pid)
        assert len(started) == (2 if phase == "after a prediction" else 1)
        assert all(is_running(pid) for pid in started)
        process.kill()
        process.wait()
        until(lambda: not any(is_running(pid) for pid in started), timeout=5, what="no survivor")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
