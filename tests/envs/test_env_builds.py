"""Atomic, locked, content-addressed builds: kills, failures, concurrent builds."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from support import until
from vendo.config import Settings
from vendo.envs import BuildResult, build_project
from vendo.envs.store import MARKER, EnvStore
from vendo.errors import BuildError

FIXTURES = Path(__file__).parent.parent / "fixtures"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BUILD_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from vendo.envs import build_project
    from vendo.config import Settings
    build_project(sys.argv[1], Settings(data_dir=sys.argv[2]), uv_cache_dir=Path(sys.argv[3]))
    """
)


def project_from(name: str, dest: Path) -> Path:
    # A fresh path per test: uv's cache of built local packages is keyed by path.
    target = dest / name
    shutil.copytree(FIXTURES / name, target)
    return target


PREDICTOR = """\
from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, text: str) -> str:
        return text
"""


def model_project(tmp_path: Path, cog_yaml: str) -> Path:
    """``tmp_path/model``: :data:`PREDICTOR` and the given ``cog.yaml``."""
    project = tmp_path / "model"
    project.mkdir()
    (project / "predict.py").write_text(PREDICTOR)
    (project / "cog.yaml").write_text(cog_yaml)
    return project


def ready_envs(data_dir: Path) -> list[Path]:
    envs = data_dir / "envs"
    if not envs.is_dir():
        return []
    return [p for p in envs.iterdir() if not p.name.startswith(".")]


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def test_killed_build_is_never_used_and_the_next_build_succeeds(
    tmp_path: Path, uv_cache: Path
) -> None:
    project = project_from("bld_slow_install", tmp_path)
    data_dir = tmp_path / "data"
    hang = tmp_path / "hang-marker"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VENDO_")}
    env["VENDO_TEST_HANG_FILE"] = str(hang)
    proc = subprocess.Popen(
        [sys.executable, "-c", BUILD_SCRIPT, str(project), str(data_dir), str(uv_cache)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        until(lambda: hang.exists() or proc.poll() is not None, timeout=120, what="the install")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        # Midway: the venv exists in a temporary folder, the package install is running.
        temps = list((data_dir / "envs").glob(".tmp-*"))
        assert len(temps) == 1 and (temps[0] / "bin" / "python").exists()
        assert not (temps[0] / MARKER).exists()
        assert ready_envs(data_dir) == []
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    backend_pid = int(hang.read_text())
    until(lambda: not pid_alive(backend_pid), timeout=30, what="the orphaned installer to exit")
    assert ready_envs(data_dir) == []  # the interrupted build is not an environment

    hang.unlink()
    result = build_project(project, Settings(data_dir=data_dir), uv_cache_dir=uv_cache)
    assert not result.reused
    assert ready_envs(data_dir) == [result.env_dir]
    assert list((data_dir / "envs").glob(".tmp-*")) == []  # the leftover is gone
    out = subprocess.run(
        [str(result.python), "-c", "import slowpkg; print(slowpkg.NAME)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "slowpkg", out.stderr


def test_failing_run_step_shows_command_and_output(
    tmp_path: Path, settings: Settings, uv_cache: Path
) -> None:
    project = model_project(
        tmp_path,
        'build:\n  python_version: "3.12"\n  run:\n    - echo fine\n'
        '    - echo "about to fail in $VIRTUAL_ENV"; exit 3\npredict: predict.py:Predictor\n',
    )
    with pytest.raises(BuildError) as info:
        build_project(project, settings, uv_cache_dir=uv_cache)
    error = info.value
    assert "build.run[1] failed (exit status 3)" in error.detail
    assert 'echo "about to fail' in error.detail
    assert "about to fail in " in error.log_tail and ".tmp-" in error.log_tail  # venv active
    log_path = getattr(error, "log_path", None)
    assert log_path is not None and "about to fail" in Path(log_path).read_text()
    assert ready_envs(settings.data_dir) == []
    assert list((settings.data_dir / "envs").glob(".tmp-*")) == []


def test_concurrent_builds_of_one_key_share_one_environment(
    tmp_path: Path, settings: Settings, uv_cache: Path
) -> None:
    # A run step slow enough that the second build surely waits on the lock.
    project = model_project(
        tmp_path,
        'build:\n  python_version: "3.11"\n  run: ["sleep 1"]\npredict: predict.py:Predictor\n',
    )
    results: list[BuildResult] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(build_project(project, settings, uv_cache_dir=uv_cache))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []
    assert len(results) == 2
    assert results[0].env_dir == results[1].env_dir
    assert sorted(r.reused for r in results) == [False, True]
    assert ready_envs(settings.data_dir) == [results[0].env_dir]


def test_identical_definitions_share_an_environment(
    tmp_path: Path, settings: Settings, uv_cache: Path
) -> None:
    made = []
    for name in ("one", "two"):
        project = tmp_path / name
        project.mkdir()
        (project / "predict.py").write_text(f"# {name}\n" + PREDICTOR)
        (project / "cog.yaml").write_text(
            'build:\n  python_version: "3.11"\npredict: predict.py:Predictor\n'
        )
        made.append(build_project(project, settings, uv_cache_dir=uv_cache))
    assert made[0].env_key == made[1].env_key
    assert made[1].reused
    # ...and a different definition gets its own.
    (tmp_path / "two" / "cog.yaml").write_text(
        'build:\n  python_version: "3.11"\n  run: ["true"]\npredict: predict.py:Predictor\n'
    )
    third = build_project(tmp_path / "two", settings, uv_cache_dir=uv_cache)
    assert third.env_key != made[0].env_key
    assert {p.name for p in ready_envs(settings.data_dir)} == {made[0].env_key, third.env_key}


def test_store_discards_a_folder_without_marker(tmp_path: Path) -> None:
    store = EnvStore(tmp_path)
    broken = store.path("abc")
    broken.mkdir(parents=True)
    (broken / "junk").write_text("x")
    assert not store.is_ready("abc")
    with store.lock("abc"):
        temp = store.new_temp("abc")
    assert not broken.exists()
    assert temp.name.startswith(".tmp-abc-")


def test_pre_install_then_packages_then_run_steps(
    tmp_path: Path, settings: Settings, uv_cache: Path
) -> None:
    project = model_project(
        tmp_path,
        "build:\n"
        '  python_version: "3.12"\n'
        "  python_packages: [pyyaml]\n"
        '  pre_install: ["python -c \\"import yaml\\" 2> $VIRTUAL_ENV/pre.txt || true"]\n'
        "  run:\n"
        '    - python -c "import yaml" && pip --version > $VIRTUAL_ENV/run.txt && pwd >> '
        "$VIRTUAL_ENV/run.txt\n"
        "predict: predict.py:Predictor\n",
    )
    result = build_project(project, settings, uv_cache_dir=uv_cache)
    # pre_install ran before the packages were there; run steps after, with pip at hand
    # and outside the project.
    assert "No module named 'yaml'" in (result.env_dir / "pre.txt").read_text()
    pip_line, cwd = (result.env_dir / "run.txt").read_text().splitlines()
    assert pip_line.startswith("pip ")
    assert not Path(cwd).is_relative_to(project)
    assert any("pre_install: deprecated" in w for w in result.warnings)
    assert any("python_packages: deprecated" in w for w in result.warnings)


def test_changed_predictor_reuses_the_environment_with_a_new_schema(
    tmp_path: Path, settings: Settings, uv_cache: Path
) -> None:
    project = model_project(
        tmp_path, 'build:\n  python_version: "3.11"\npredict: predict.py:Predictor\n'
    )
    first = build_project(project, settings, uv_cache_dir=uv_cache)
    assert "text" in first.openapi["components"]["schemas"]["Input"]["properties"]

    (project / "predict.py").write_text(PREDICTOR.replace("text: str", "prompt: str"))
    second = build_project(project, settings, uv_cache_dir=uv_cache)
    assert second.reused and second.env_dir == first.env_dir
    assert second.openapi_path != first.openapi_path
    properties = second.openapi["components"]["schemas"]["Input"]["properties"]
    assert "prompt" in properties and "text" not in properties
