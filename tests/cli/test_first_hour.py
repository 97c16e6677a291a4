"""A new user's first hour, as the README and docs/trainings.md have them: `vendo serve`
in a folder with the default data dir (``./.vendo``, relative), then `push`, `run` with
a file and `train` into a destination that does not exist yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve_support import clean_env, serving, vendo

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_files_and_weights_reach_models_with_the_default_data_dir(tmp_path: Path) -> None:
    # no VENDO_DATA_DIR: ./.vendo, a relative path, while runners work in their model's
    # own folder (a file input or weights named relative to the server were not found)
    env = clean_env(VENDO_API_TOKEN="first-hour", VENDO_ALLOW_NEAREST_PYTHON="true")
    (tmp_path / "note.txt").write_text("abc")
    with serving(tmp_path, env, "--port", "0"):
        for fixture, name in (("api_file_io", "admin/file-io"), ("api_trainer", "you/trainer")):
            pushed = vendo("push", str(FIXTURES / fixture), name, "-q", cwd=tmp_path, env=env)
            assert pushed.returncode == 0, pushed.stderr
        ran = vendo("run", "admin/file-io", "-i", "document=@note.txt", "-o", "out",
                    cwd=tmp_path, env=env)  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        assert Path(tmp_path / ran.stdout.strip()).read_text() == "cba"

        trained = vendo("train", "you/trainer", "--destination", "you/mine", "-i", "text=w1",
                        cwd=tmp_path, env=env)  # fmt: skip
        assert trained.returncode == 0, trained.stderr
        assert "Created the model you/mine (private)" in trained.stderr
        assert trained.stdout.strip().startswith("you/mine:")
        ran = vendo("run", "you/mine", "-i", "text=x", cwd=tmp_path, env=env)
        assert ran.returncode == 0, ran.stderr
        assert "w1" in ran.stdout

        again = vendo("train", "you/trainer", "-d", "you/mine", "-i", "text=w2",
                      cwd=tmp_path, env=env)  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert "Created" not in again.stderr  # it exists now: trained into as it is
