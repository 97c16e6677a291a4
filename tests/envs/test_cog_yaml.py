from __future__ import annotations

from pathlib import Path

import pytest

from vendo.envs.config import CogConfig, load_config
from vendo.errors import ConfigError


def write_project(root: Path, cog_yaml: str, files: tuple[str, ...] = ("predict.py",)) -> Path:
    for name in files:
        (root / name).write_text("", encoding="utf-8")
    (root / "cog.yaml").write_text(cog_yaml, encoding="utf-8")
    return root


def load(tmp_path: Path, cog_yaml: str, files: tuple[str, ...] = ("predict.py",)) -> CogConfig:
    return load_config(write_project(tmp_path, cog_yaml, files))


def error(tmp_path: Path, cog_yaml: str, files: tuple[str, ...] = ("predict.py",)) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, cog_yaml, files)
    return info.value.detail


def test_full_config_is_honoured(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy\n")
    config = load(
        tmp_path,
        """
build:
  python_version: 3.10
  python_requirements: requirements.txt
  system_packages: [ffmpeg, libgl1]
  gpu: true
  cuda: "12.1"
  run:
    - echo one
    - command: echo two
predict: predict.py:Predictor
train: train.py:train
concurrency:
  max: 4
environment:
  - HF_HOME=/tmp/hf
  - GREETING=a=b
image: r8.im/me/model
""",
        files=("predict.py", "train.py"),
    )
    assert config.warnings == []
    assert config.build.python_version == "3.10"  # not 3.1: YAML floats keep their text
    assert config.build.python_minor == (3, 10)
    assert config.build.python_requirements == "requirements.txt"
    assert config.requirements_path == tmp_path.resolve() / "requirements.txt"
    assert config.build.system_packages == ("ffmpeg", "libgl1")
    assert config.build.gpu is True and config.build.cuda == "12.1"
    assert [s.command for s in config.build.run] == ["echo one", "echo two"]
    assert config.predict == "predict.py:Predictor"
    assert config.train == "train.py:train"
    assert config.concurrency_max == 4
    assert config.environment == {"HF_HOME": "/tmp/hf", "GREETING": "a=b"}


def test_run_key_and_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, "build:\n  python_version: '3.12'\nrun: predict.py\n")
    assert config.predict == "predict.py"
    assert config.train is None
    assert config.concurrency_max is None  # absent, not 1: @concurrent may decide
    assert config.environment == {}


def test_unknown_keys_warn(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "build:\n  python_version: '3.12'\n  fast: true\n  cudnn: '8'\n"
        "cog_runtime: true\npredict: predict.py:Predictor\n",
    )
    assert any("build.fast: unknown key" in w for w in config.warnings)
    assert any("cog_runtime: unknown key" in w for w in config.warnings)
    assert any("build.cudnn" in w for w in config.warnings)


def test_missing_python_version_warns(tmp_path: Path) -> None:
    config = load(tmp_path, "predict: predict.py:Predictor\n")
    assert config.build.python_version is None
    assert any("build.python_version: missing" in w for w in config.warnings)


def test_deprecated_keys_warn(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "build:\n  python_version: '3.11'\n  python_packages: [numpy==1.26.4]\n"
        "  pre_install: [echo hi]\npredict: predict.py:Predictor\n",
    )
    assert config.build.python_packages == ("numpy==1.26.4",)
    assert config.build.pre_install == ("echo hi",)
    assert any("python_packages: deprecated" in w for w in config.warnings)
    assert any("pre_install: deprecated" in w for w in config.warnings)


@pytest.mark.parametrize(
    ("cog_yaml", "expected"),
    [
        ("build: [1]\npredict: predict.py:P\n", "cog.yaml: build: expected a mapping"),
        (
            "build:\n  python_version: [3]\npredict: predict.py:P\n",
            "cog.yaml: build.python_version: expected a version",
        ),
        (
            "build:\n  python_version: '3.7'\npredict: predict.py:P\n",
            "cog.yaml: build.python_version: 3.7 is not supported; models run on Python 3.8 "
            "or later",
        ),
        (
            "build:\n  python_version: '3.12'\n  gpu: 'yes'\npredict: predict.py:P\n",
            "cog.yaml: build.gpu: expected true or false",
        ),
        (
            "build:\n  python_version: '3.12'\n  system_packages: ffmpeg\npredict: predict.py:P\n",
            "cog.yaml: build.system_packages: expected a list",
        ),
        (
            "build:\n  python_version: '3.12'\n  run: [{command: x, mounts: [{type: secret}]}]\n"
            "predict: predict.py:P\n",
            "cog.yaml: build.run[0].mounts: secret mounts are not supported",
        ),
        (
            "build:\n  python_version: '3.12'\n  python_requirements: nope.txt\n"
            "predict: predict.py:P\n",
            "cog.yaml: build.python_requirements: nope.txt not found",
        ),
        (
            "build:\n  python_version: '3.12'\n  python_requirements: ../x.txt\n"
            "predict: predict.py:P\n",
            "cog.yaml: build.python_requirements: ../x.txt points outside the project",
        ),
        ("build:\n  python_version: '3.12'\n", "cog.yaml: run: no predictor"),
        ("predict: missing.py:Predictor\n", "cog.yaml: predict: missing.py not found"),
        ("predict: 42\n", "cog.yaml: predict: expected a reference"),
        ("predict: predict.py:P\nrun: predict.py:P\n", "cog.yaml: run: set either run or predict"),
        ("predict: predict.py:P\nconcurrency:\n  max: 0\n", "cog.yaml: concurrency.max: must be"),
        (
            "predict: predict.py:P\nconcurrency:\n  max: two\n",
            "cog.yaml: concurrency.max: expected",
        ),
        ("predict: predict.py:P\nenvironment: {A: b}\n", "cog.yaml: environment: expected a list"),
        ("predict: predict.py:P\nenvironment: [NOVALUE]\n", "cog.yaml: environment[0]: expected"),
        (
            "predict: predict.py:P\nenvironment: [OK=1, PYTHONPATH=/x]\n",
            "cog.yaml: environment[1]: PYTHONPATH is set by the platform",
        ),
        (
            "predict: predict.py:P\nenvironment: [CUDA_VISIBLE_DEVICES=0]\n",
            "cog.yaml: environment[0]: CUDA_VISIBLE_DEVICES is set by the platform",
        ),
        ("predict: predict.py:P\nweights: [a]\n", "cog.yaml: weights: not supported"),
        ("predict: [unclosed\n", "cog.yaml: not valid YAML"),
        ("- a\n- b\n", "cog.yaml: expected a mapping of keys"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, cog_yaml: str, expected: str) -> None:
    assert expected in error(tmp_path, cog_yaml)


def test_bad_yaml_is_one_line_saying_where(tmp_path: Path) -> None:
    message = error(tmp_path, 'build:\n  python_version: "3.11"\n predict: [x\n')
    assert "\n" not in message
    assert message.startswith("cog.yaml: not valid YAML at line 3, column 2: expected <block end>")


def test_python_packages_with_requirements_rejected(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy\n")
    message = error(
        tmp_path,
        "build:\n  python_version: '3.12'\n  python_requirements: requirements.txt\n"
        "  python_packages: [numpy]\npredict: predict.py:P\n",
    )
    assert "cog.yaml: build.python_packages: set either" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cog.yaml: not found"):
        load_config(tmp_path)


def test_typos_suggest_the_key_at_every_level(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "biuld: {}\n"
        "build:\n  python_version: '3.12'\n  python_pakages: [numpy]\n  sytem_packages: [git]\n"
        "  run:\n    - comand: echo hi\n      command: echo hi\n"
        "concurrency:\n  maxx: 2\n"
        "predict: predict.py:Predictor\n",
    )
    assert config.warnings == [
        "cog.yaml: biuld: unknown key, ignored — did you mean build?",
        "cog.yaml: build.python_pakages: unknown key, ignored — did you mean python_packages?",
        "cog.yaml: build.sytem_packages: unknown key, ignored — did you mean system_packages?",
        "cog.yaml: build.run[0].comand: unknown key, ignored — did you mean command?",
        "cog.yaml: concurrency.maxx: unknown key, ignored — did you mean max?",
    ]
    # nothing close: no guess
    far = load(tmp_path, "build:\n  python_version: '3.12'\n  zzz: 1\npredict: predict.py\n")
    assert far.warnings == ["cog.yaml: build.zzz: unknown key, ignored"]


@pytest.mark.parametrize("version", ["3.8", "3.9", "3.9.18"])
def test_python_3_8_and_3_9_are_accepted(tmp_path: Path, version: str) -> None:
    config = load(tmp_path, f"build:\n  python_version: '{version}'\npredict: predict.py\n")
    assert config.build.python_version == version
    assert config.warnings == []
