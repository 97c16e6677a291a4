"""Interpreters, system packages and requirement files, against the real machine."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import uv

from vendo.envs.config import load_config
from vendo.envs.python import find_python, installed_pythons
from vendo.envs.requirements import (
    choose_torch_backend,
    collect_requirements,
    host_index_options,
    local_cpu_torch_wheels,
)
from vendo.envs.system import check_system_packages
from vendo.errors import BuildError, ConfigError

NO_SUCH_PACKAGE = "vendo-no-such-package-xyz"


@pytest.fixture
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    # uv refuses at once instead of trying the network for a managed Python.
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")


def test_installed_version_is_found() -> None:
    pythons = installed_pythons(uv.find_uv_bin())
    assert pythons, "tests need at least one Python 3.10+"
    wanted = pythons[-1]
    found, warnings = find_python(
        f"{wanted.minor[0]}.{wanted.minor[1]}", uv=uv.find_uv_bin(), download=False
    )
    assert found.minor == wanted.minor
    assert warnings == []


def test_missing_key_takes_newest_with_warning() -> None:
    pythons = installed_pythons(uv.find_uv_bin())
    lines: list[str] = []
    found, warnings = find_python(None, uv=uv.find_uv_bin(), log=lines.append)
    assert found.minor == pythons[0].minor
    assert warnings == []  # cog.yaml's loader warns about the missing key, once
    assert "newest installed" in lines[0]


def test_unavailable_version_fails_listing_installed(no_downloads: None) -> None:
    pythons = installed_pythons(uv.find_uv_bin())
    with pytest.raises(ConfigError) as info:
        find_python("3.19", uv=uv.find_uv_bin())
    message = info.value.detail
    assert message.startswith("cog.yaml: build.python_version: Python 3.19 is not installed")
    for python in pythons:
        assert python.version_text in message


def test_nearest_only_when_allowed(no_downloads: None) -> None:
    pythons = installed_pythons(uv.find_uv_bin())
    found, warnings = find_python("3.19", uv=uv.find_uv_bin(), allow_nearest=True)
    assert found.minor == pythons[0].minor  # the newest is nearest to 3.19
    assert "nearest installed" in warnings[0]


def test_system_packages_installed_missing_and_unknown() -> None:
    result = check_system_packages(("bash", NO_SUCH_PACKAGE))
    assert result.installed == ("bash",)
    assert result.unknown == (NO_SUCH_PACKAGE,)
    assert any("does not exist in this distribution" in w for w in result.warnings)


def _known_but_not_installed() -> str:
    """A Debian package apt can install here that is not installed (skips if none)."""
    for name in ("ffmpeg", "cowsay", "sl"):
        result = check_system_packages((name,), strict=False)
        if result.missing == (name,):
            return name
    pytest.skip("no apt package lists, or every candidate package is installed")


def test_missing_system_package_fails_with_the_install_command() -> None:
    name = _known_but_not_installed()
    with pytest.raises(BuildError) as failed:
        check_system_packages(("bash", name))  # strict by default
    detail = failed.value.detail
    assert f"apt-get install -y {name}" in detail
    assert "VENDO_STRICT_SYSTEM_PACKAGES=0" in detail and "\n" not in detail
    # the setting turns it into a warning
    result = check_system_packages(("bash", name), strict=False)
    assert result.missing == (name,)
    assert f"apt-get install -y {name}" in result.warnings[0]


def test_unknown_system_package_is_only_a_warning() -> None:
    # Nothing installs it here (an old Debian name, say): the model may not need it.
    result = check_system_packages((NO_SUCH_PACKAGE,), strict=True)
    assert result.unknown == (NO_SUCH_PACKAGE,)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_requirements_inline_local_files_and_drop_cog(tmp_path: Path) -> None:
    write(tmp_path / "predict.py", "")
    write(tmp_path / "wheels" / "tiny-1.0-py3-none-any.whl", "not really a wheel")
    write(tmp_path / "more.txt", "pyyaml==6.0.2  # comment\n")
    write(
        tmp_path / "requirements.txt",
        """\
        # models often pin cog itself
        cog==0.9.4
        numpy>=1.26 ; python_version >= "3.10"
        -r more.txt
        ./wheels/tiny-1.0-py3-none-any.whl
        --extra-index-url https://example.invalid/simple
        requests \\
            >=2
        """,
    )
    write(
        tmp_path / "cog.yaml",
        'build:\n  python_version: "3.12"\n  python_requirements: requirements.txt\n'
        "predict: predict.py:Predictor\n",
    )
    reqs = collect_requirements(load_config(tmp_path), cog_dependencies=False)
    wheel = (tmp_path / "wheels" / "tiny-1.0-py3-none-any.whl").resolve()
    assert reqs.lines == [
        'numpy>=1.26 ; python_version >= "3.10"',
        "pyyaml==6.0.2",
        str(wheel),
        "--extra-index-url https://example.invalid/simple",
        "requests >=2",
    ]
    assert reqs.names == {"numpy", "pyyaml", "requests"}
    assert any("cog dropped" in w and "line 2" in w for w in reqs.warnings)
    assert any(d.startswith("wheels/tiny-1.0-py3-none-any.whl=") for d in reqs.digests)


def test_cog_dependencies_are_added_unless_the_model_names_them(tmp_path: Path) -> None:
    write(tmp_path / "predict.py", "")
    write(tmp_path / "requirements.txt", "requests==2.31.0\nPyYAML<6\nnumpy\n")
    write(
        tmp_path / "cog.yaml",
        'build:\n  python_version: "3.12"\n  python_requirements: requirements.txt\n'
        "predict: predict.py:Predictor\n",
    )
    reqs = collect_requirements(load_config(tmp_path))
    # the model's own lines first and unchanged; Cog's others after them
    assert reqs.lines == [
        "requests==2.31.0",
        "PyYAML<6",
        "numpy",
        "attrs>=20.1",
        "fastapi>=0.100",
        "pydantic>=1.9",
        "structlog>=20",
        "typing_extensions>=4.4.0",
        "uvicorn[standard]>=0.12",
    ]
    # a model with no requirements at all still gets them, as in a Cog image
    write(tmp_path / "cog.yaml", 'build:\n  python_version: "3.12"\npredict: predict.py\n')
    bare = collect_requirements(load_config(tmp_path))
    assert {line.split(">")[0].split("[")[0] for line in bare.lines} >= {
        "requests",
        "PyYAML",
        "structlog",
        "typing_extensions",
    }


def test_local_file_outside_project_is_rejected(tmp_path: Path) -> None:
    project = tmp_path / "model"
    write(tmp_path / "outside.whl", "x")
    write(project / "predict.py", "")
    write(project / "requirements.txt", "../outside.whl\n")
    write(
        project / "cog.yaml",
        'build:\n  python_version: "3.12"\n  python_requirements: requirements.txt\n'
        "predict: predict.py:Predictor\n",
    )
    with pytest.raises(ConfigError, match="requirements.txt line 1: ../outside.whl points outside"):
        collect_requirements(load_config(project))


def torch_config(tmp_path: Path, build: str) -> tuple[object, object]:
    write(tmp_path / "predict.py", "")
    write(tmp_path / "cog.yaml", f"build:\n{build}predict: predict.py:Predictor\n")
    config = load_config(tmp_path)
    return config, collect_requirements(config)


def test_torch_backend_choice(tmp_path: Path) -> None:
    cpu_yaml = '  python_version: "3.12"\n  python_packages: [torch==2.5.1]\n'
    config, reqs = torch_config(tmp_path, cpu_yaml)
    assert choose_torch_backend(config, reqs, driver_cuda=None) == ("cpu", [])  # type: ignore[arg-type]

    gpu_yaml = cpu_yaml + '  gpu: true\n  cuda: "12.1"\n'
    config, reqs = torch_config(tmp_path, gpu_yaml)
    backend, warnings = choose_torch_backend(config, reqs, driver_cuda=None)  # type: ignore[arg-type]
    assert backend == "cpu" and "no NVIDIA driver" in warnings[0]
    assert choose_torch_backend(config, reqs, driver_cuda="12.4") == ("cu121", [])  # type: ignore[arg-type]
    backend, warnings = choose_torch_backend(config, reqs, driver_cuda="11.8")  # type: ignore[arg-type]
    assert backend == "auto" and "newer than this host's driver" in warnings[0]

    config, reqs = torch_config(tmp_path, '  python_version: "3.12"\n  python_packages: [numpy]\n')
    assert choose_torch_backend(config, reqs, driver_cuda=None) == (None, [])  # type: ignore[arg-type]


def test_local_cpu_torch_wheels_are_preferred_over_the_pytorch_index(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    write(wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "")
    options = host_index_options({"PIP_FIND_LINKS": str(wheels)})
    assert options == ["--find-links", str(wheels)]
    # Set for uv itself: pip's setting is not passed on twice.
    assert host_index_options({"PIP_FIND_LINKS": "/x", "UV_FIND_LINKS": "/y"}) == []

    config, reqs = torch_config(
        tmp_path / "pinned", '  python_version: "3.11"\n  python_packages: [torch==2.13.0]\n'
    )
    found = local_cpu_torch_wheels(reqs, options, {})  # type: ignore[arg-type]
    assert [w.name.split("-")[1] for w in found] == ["2.13.0+cpu"]
    assert choose_torch_backend(config, reqs, driver_cuda=None, cpu_wheels=found) == (None, [])  # type: ignore[arg-type]

    config, reqs = torch_config(
        tmp_path / "loose", '  python_version: "3.11"\n  python_packages: [torch]\n'
    )
    backend, warnings = choose_torch_backend(config, reqs, driver_cuda=None, cpu_wheels=found)  # type: ignore[arg-type]
    assert backend is None and "pin torch to one of these versions" in warnings[0]


@pytest.fixture
def only_python_3_11(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host whose only interpreter is the system's 3.11: no pyenv, no uv-managed ones."""
    system = Path("/usr/bin/python3.11")
    if not system.is_file():
        pytest.skip("needs /usr/bin/python3.11")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3.11").symlink_to(system)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "uv-pythons"))
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")  # as offline: fail at once


@pytest.mark.parametrize("requested", ["3.8", "3.9"])
def test_old_python_unavailable_names_the_nearest_and_the_setting(
    only_python_3_11: None, requested: str
) -> None:
    with pytest.raises(ConfigError) as info:
        find_python(requested, uv=uv.find_uv_bin())
    message = info.value.detail
    assert "\n" not in message
    assert message.startswith(
        f"cog.yaml: build.python_version: Python {requested} is not installed"
    )
    assert "the nearest available is 3.11." in message
    assert "VENDO_ALLOW_NEAREST_PYTHON=1" in message
    found, warnings = find_python(requested, uv=uv.find_uv_bin(), allow_nearest=True)
    assert found.minor == (3, 11)
    assert "nearest installed" in warnings[0]


def test_old_pythons_are_found_when_installed() -> None:
    for requested in ("3.8", "3.9"):
        try:
            found, _ = find_python(requested, uv=uv.find_uv_bin(), download=False)
        except ConfigError:
            continue  # not on this host
        assert found.minor == (3, int(requested[2:]))
