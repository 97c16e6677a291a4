"""``vendo run`` and ``vendo predict`` save the same output file under the same name:
the model's own (issue 16, item 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve_support import clean_env, serving, vendo

pytestmark = pytest.mark.slow

MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "cli_named_file"


def test_run_and_predict_name_an_output_file_alike(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # one data dir: predict reuses the environment the server built for the push
    env = clean_env(
        VENDO_API_TOKEN="names-token",
        VENDO_DATA_DIR=str(data),
        VENDO_ALLOW_NEAREST_PYTHON="true",
    )
    names: dict[str, list[str]] = {}
    with serving(tmp_path, env, "--port", "0", data_dir=data):
        pushed = vendo("push", str(MODEL), "admin/named", "-q", cwd=tmp_path, env=env)
        assert pushed.returncode == 0, pushed.stderr
        out = tmp_path / "run"
        for text in ("one", "two"):
            ran = vendo("run", "admin/named", "-i", f"text={text}", "-o", str(out),
                        cwd=tmp_path, env=env)  # fmt: skip
            assert ran.returncode == 0, ran.stderr
            assert Path(ran.stdout.strip()).read_text() == text
            names.setdefault("run", []).append(Path(ran.stdout.strip()).name)
    out = tmp_path / "predict"
    for text in ("one", "two"):
        done = vendo("predict", str(MODEL), "-i", f"text={text}", "-o", str(out),
                     cwd=tmp_path, env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert Path(done.stdout.strip()).read_text() == text
        names.setdefault("predict", []).append(Path(done.stdout.strip()).name)
    assert names["run"] == names["predict"] == ["report.txt", "report.1.txt"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["report.1.txt", "report.txt"]
