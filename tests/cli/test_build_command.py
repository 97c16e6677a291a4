"""``vendo build`` as a newcomer types it (issue 16, items 5 and 6): a cog.yaml typo is
named with the key meant, and ``--dockerfile -o`` elsewhere leaves the model folder as
it was while bringing Vendo into the build context."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from serve_support import clean_env, vendo

PREDICT = (
    "from cog import BasePredictor\n\n\n"
    "class Predictor(BasePredictor):\n"
    "    def predict(self, text: str) -> str:\n"
    "        return text\n"
)


def _model(root: Path, build: str) -> Path:
    root.mkdir()
    (root / "predict.py").write_text(PREDICT)
    (root / "cog.yaml").write_text(f"build:\n{build}predict: predict.py:Predictor\n")
    return root


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_cog_yaml_typo_names_the_key_meant(tmp_path: Path) -> None:
    model = _model(tmp_path / "m", '  python_version: "3.11"\n  python_pakages:\n    - six\n')
    done = vendo(
        "build", str(model), "--dockerfile", "-o", str(tmp_path / "out" / "Dockerfile"),
        cwd=tmp_path, env=clean_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join((done.stdout + done.stderr).split())
    assert "build.python_pakages: unknown key, ignored" in said
    assert "did you mean python_packages?" in said
    assert "Traceback" not in said


def test_a_dockerfile_elsewhere_leaves_the_model_folder_alone(tmp_path: Path) -> None:
    model = _model(tmp_path / "m", '  python_version: "3.11"\n')
    before = _digest(model)
    out = tmp_path / "out"
    done = vendo(
        "build", str(model), "--dockerfile", "-o", str(out / "Dockerfile"),
        cwd=tmp_path, env=clean_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _digest(model) == before
    dockerfile = (out / "Dockerfile").read_text()
    assert not re.search(r"vendo==\d", dockerfile), "pins a release that is not published"
    wheels = list(out.rglob("vendo-*.whl"))
    assert len(wheels) == 1, sorted(p.name for p in out.rglob("*"))
    assert wheels[0].relative_to(out).as_posix() in dockerfile
