"""The runtime runs on Python 3.8 to 3.13 with only the standard library.

Each interpreter found starts the child with ``PYTHONPATH`` set to a folder made by
``install_runtime``, so none of Vendo's third-party dependencies are importable there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

from vendo.runner.dist import install_runtime, runtime_files, runtime_hash

from .driver import Child

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VERSIONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")


def _works(python: str, version: str) -> bool:
    try:
        result = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return False
    return result.returncode == 0 and result.stdout.strip() == version


def find_interpreter(version: str) -> Optional[str]:
    """``pythonX.Y`` from the pyenv versions folders, else from PATH."""
    candidates = []
    for root in (os.environ.get("PYENV_ROOT"), os.path.expanduser("~/.pyenv")):
        if root:
            candidates += sorted(Path(root, "versions").glob(f"{version}*/bin/python{version}"))
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if _works(str(candidate), version):
            return str(candidate)
    return None


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_runtime(tmp_path_factory.mktemp("runtime"))


def test_python_3_10_is_available() -> None:
    assert find_interpreter("3.10"), "the oldest supported Python (3.10) must be installed"


@pytest.mark.parametrize("version", VERSIONS)
def test_runtime_runs_on(version: str, runtime: Path) -> None:
    python = find_interpreter(version)
    if python is None:
        pytest.skip(f"python{version} is not installed")
    probe = subprocess.run(
        [python, "-c", "import vendo.runner.worker, vendo; print(vendo.__file__)"],
        env={"PYTHONPATH": str(runtime), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(runtime))

    for fixture, ref, payload, expected in (
        ("rt_hello", "predict.py:Predictor", {"text": version}, f"hello {version}"),
        ("rt_async_predict", "predict.py:Predictor", {"text": "up"}, "UP"),
    ):
        with Child(FIXTURES / fixture, ref, python=python, pythonpath=runtime) as child:
            assert child.ready()["type"] == "ready", child.logs(None)
            done = child.run("p", payload)
            assert (done["status"], done["output"]) == ("succeeded", expected), done

    # the schema comes out the same on every version (typing internals differ between them)
    args = ["--ref", "predict.py:Predictor", "--train-ref", "train.py:train"]
    documents = [
        subprocess.run(
            [exe, "-m", "vendo.runner", "openapi", "--project", str(FIXTURES / "rt_schema"), *args],
            env={"PYTHONPATH": str(runtime), "PATH": os.environ.get("PATH", "")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        for exe in (python, sys.executable)
    ]
    assert documents[0].returncode == 0, documents[0].stderr
    assert json.loads(documents[0].stdout) == json.loads(documents[1].stdout)

    # canceling relies on signals and signal masks: check it on every version too
    with Child(FIXTURES / "rt_cancel", python=python, pythonpath=runtime) as child:
        assert child.ready()["type"] == "ready", child.logs(None)
        child.predict("p", {"mode": "sleep"})
        while "started" not in child.logs("p"):
            child.recv()
        child.send({"type": "cancel", "id": "p"})
        assert child.wait_for("done", id="p")["status"] == "canceled"


def test_install_runtime_copies_only_the_runtime(tmp_path: Path) -> None:
    target = install_runtime(tmp_path)
    assert target == tmp_path
    copied = sorted(p.relative_to(tmp_path / "vendo") for p in tmp_path.rglob("*.py"))
    assert copied == sorted(runtime_files())
    tops = {p.parts[0] for p in copied}
    assert tops == {"__init__.py", "sdk", "schema", "runner"}
    # installing again replaces the old copy
    (tmp_path / "vendo" / "stale.py").write_text("")
    install_runtime(tmp_path)
    assert not (tmp_path / "vendo" / "stale.py").exists()


def test_runtime_hash_is_stable() -> None:
    assert runtime_hash() == runtime_hash()
    assert len(runtime_hash()) == 64
