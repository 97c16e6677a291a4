"""Two models with clashing needs, built and run side by side, Vendo untouched."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pydantic
import pytest

from vendo.config import Settings
from vendo.envs import BuildResult, build_project, child_environment
from vendo.errors import ConfigError
from vendo.runner.protocol import encode, read_message

FIXTURES = Path(__file__).parent.parent / "fixtures"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def numpy_model(shared_settings: Settings, uv_cache: Path) -> BuildResult:
    return build_project(FIXTURES / "bld_numpy", shared_settings, uv_cache_dir=uv_cache)


@pytest.fixture(scope="module")
def pydantic1_model(shared_settings: Settings, uv_cache: Path) -> BuildResult:
    return build_project(FIXTURES / "bld_pydantic1", shared_settings, uv_cache_dir=uv_cache)


@pytest.fixture(scope="module")
def cog_deps_model(shared_settings: Settings, uv_cache: Path) -> BuildResult:
    return build_project(FIXTURES / "bld_cog_deps", shared_settings, uv_cache_dir=uv_cache)


@pytest.fixture(scope="module")
def python38_model(shared_settings: Settings, uv_cache: Path) -> BuildResult:
    try:
        return build_project(FIXTURES / "bld_python38", shared_settings, uv_cache_dir=uv_cache)
    except ConfigError as exc:
        if "is not installed and could not be downloaded" not in exc.detail:
            raise
        pytest.skip(exc.detail)  # no 3.8 here, and uv cannot download one


def run_python(result: BuildResult, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(result.python), "-c", code],
        capture_output=True,
        text=True,
        env=child_environment(result),
        cwd=result.project_dir,
        timeout=120,
    )


def test_each_model_gets_its_own_packages(
    numpy_model: BuildResult, pydantic1_model: BuildResult
) -> None:
    assert numpy_model.env_dir != pydantic1_model.env_dir
    assert pydantic.VERSION.startswith("2.")  # Vendo keeps its own pydantic 2

    out = run_python(pydantic1_model, "import pydantic, sys; print(pydantic.VERSION, sys.version)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("1."), out.stdout
    assert "3.11." in out.stdout

    out = run_python(numpy_model, "import numpy, sys; print(numpy.__version__, sys.version)")
    assert out.returncode == 0, out.stderr
    assert "3.12." in out.stdout


def test_cog_yaml_environment_reaches_the_model(pydantic1_model: BuildResult) -> None:
    out = run_python(pydantic1_model, "import os; print(os.environ['GREETING'])")
    assert out.stdout.strip() == "hello from cog.yaml", out.stderr


def test_vendo_dependencies_are_not_visible(numpy_model: BuildResult) -> None:
    # Vendo's own packages that no Cog image has: none of them leaks in.
    for module in ("sqlalchemy", "alembic", "rich", "httpx", "prometheus_client"):
        out = run_python(numpy_model, f"import {module}")
        assert out.returncode != 0, f"{module} leaked into the model environment"
        assert "ModuleNotFoundError" in out.stderr
    # What a Cog image has comes from the model's own environment, not from Vendo's.
    out = run_python(numpy_model, "import yaml, pydantic; print(yaml.__file__, pydantic.__file__)")
    assert out.returncode == 0, out.stderr
    assert all(p.startswith(str(numpy_model.env_dir)) for p in out.stdout.split()), out.stdout


def test_cog_dependencies_import_undeclared_and_the_model_pin_wins(
    cog_deps_model: BuildResult,
) -> None:
    done = predict_in(cog_deps_model, {})
    assert done["status"] == "succeeded", done
    assert done["output"] == {
        "requests": "2.31.0",  # the model's pin, not Cog's range
        "yaml": "a: 1",
        "pydantic": "2",
        "others": ["attrs", "fastapi", "structlog", "typing_extensions"],
    }


def test_python_3_8_model_builds_and_predicts(python38_model: BuildResult) -> None:
    schema = python38_model.openapi["components"]["schemas"]
    assert schema["Input"]["required"] == ["text"]
    assert schema["Output"]["additionalProperties"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    done = predict_in(python38_model, {"text": "a b", "repeat": 2})
    assert done["status"] == "succeeded", done
    assert done["output"] == {"python": ["3.8"], "words": ["a", "b", "a", "b"]}


def test_runtime_imports_without_pythonpath(numpy_model: BuildResult) -> None:
    # The .pth file alone makes the runtime importable (relocatable, no PYTHONPATH).
    out = subprocess.run(
        [str(numpy_model.python), "-c", "import vendo.sdk, vendo.runner; print('ok')"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert numpy_model.runtime_path.parent == numpy_model.env_dir


def test_schema_extracted_in_each_environment(
    numpy_model: BuildResult, pydantic1_model: BuildResult
) -> None:
    # Extraction imports predict.py (`from cog import ...`) inside each environment.
    for result, name in ((numpy_model, "n"), (pydantic1_model, "name")):
        assert result.openapi is not None
        assert result.openapi_path is not None and result.openapi_path.is_file()
        assert name in result.openapi["components"]["schemas"]["Input"]["properties"]


def test_cog_requirement_is_dropped_with_a_warning(numpy_model: BuildResult) -> None:
    assert any("cog dropped" in w for w in numpy_model.warnings)
    out = run_python(numpy_model, "import importlib.util as u; print(u.find_spec('coglet'))")
    assert out.stdout.strip() == "None"


def predict_in(result: BuildResult, payload: dict[str, object]) -> dict[str, object]:
    parent, child = socket.socketpair()
    ref = result.config.predict
    assert ref is not None
    proc = subprocess.Popen(
        [str(result.python), "-m", "vendo.runner", "serve", "--project", str(result.project_dir)]
        + ["--ref", ref, "--fd", str(child.fileno())],
        pass_fds=[child.fileno()],
        env=child_environment(result),
        cwd=result.project_dir,
    )
    child.close()
    try:
        parent.settimeout(120)
        while True:
            message = read_message(parent)
            assert message is not None, "runner exited before it was ready"
            if message["type"] == "setup_failed":
                pytest.fail(str(message))
            if message["type"] == "ready":
                break
        parent.sendall(encode({"type": "predict", "id": "p1", "input": payload, "context": {}}))
        while True:
            message = read_message(parent)
            assert message is not None, "runner exited during the prediction"
            if message["type"] == "done":
                return message
    finally:
        parent.sendall(encode({"type": "shutdown"}))
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        parent.close()


def test_real_prediction_in_each_environment(
    numpy_model: BuildResult, pydantic1_model: BuildResult
) -> None:
    done = predict_in(numpy_model, {"n": 4})
    assert done["status"] == "succeeded", done
    assert str(done["output"]).startswith("numpy ") and str(done["output"]).endswith(": 6")

    done = predict_in(pydantic1_model, {"name": "vendo"})
    assert done["status"] == "succeeded", done
    assert str(done["output"]).startswith("pydantic 1.") and "hello vendo" in str(done["output"])


def test_rebuild_reuses_the_environment(
    numpy_model: BuildResult, shared_settings: Settings, uv_cache: Path
) -> None:
    again = build_project(FIXTURES / "bld_numpy", shared_settings, uv_cache_dir=uv_cache)
    assert again.reused
    assert again.env_dir == numpy_model.env_dir
    assert again.openapi == numpy_model.openapi
