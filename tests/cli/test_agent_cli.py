"""``vendo agent`` (#15) refuses what it cannot run on in one line: no PostgreSQL, no
bucket, a SKU it cannot serve, a database it cannot reach."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from serve_support import clean_env, vendo
from vendo.hardware import detect_gpus

PG = "postgresql://vendo:pw@127.0.0.1:1/none"  # nothing listens on port 1


def _error(tmp_path: Path, *args: str, **env: str) -> str:
    done = vendo("agent", "--data-dir", str(tmp_path / "data"), *args, cwd=tmp_path,
                 env=clean_env(**env), timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "pw@" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ")
    return lines[-1]


@pytest.mark.parametrize(
    "args",
    [[], ["--database-url", "sqlite:///x.db", "--storage-url", "s3://b"]],
    ids=["nothing", "sqlite"],
)
def test_an_agent_needs_postgresql(tmp_path: Path, args: list[str]) -> None:
    assert "an agent needs the PostgreSQL database" in _error(tmp_path, *args)


def test_an_agent_needs_a_bucket(tmp_path: Path) -> None:
    line = _error(tmp_path, "--database-url", PG)
    assert "an agent needs the bucket" in line and "--storage-url" in line


def test_an_unknown_or_unplaceable_sku_is_refused(tmp_path: Path) -> None:
    base = ["--database-url", PG, "--storage-url", "s3://b"]
    line = _error(tmp_path, *base, "--hardware", "gpu-nonesuch")
    assert "--hardware gpu-nonesuch: no such SKU" in line and "cpu" in line
    if not detect_gpus():  # a GPU SKU on a machine without one
        line = _error(tmp_path, *base, "--hardware", "gpu-h100")
        assert "--hardware gpu-h100: this machine cannot place it" in line


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    line = _error(
        tmp_path, "--database-url", PG, "--storage-url", "s3://b", "--hardware", "cpu",
        VENDO_STORAGE_ENDPOINT_URL="http://127.0.0.1:1",
    )  # fmt: skip
    assert line.startswith("Error: cannot use the database at postgresql://vendo:***@")


def _agent_stderr(tmp_path: Path, **env: str) -> str:
    """What an agent says before it fails on an unreachable database."""
    args = ["--database-url", PG, "--storage-url", "s3://b", "--hardware", "cpu"]
    env = clean_env(VENDO_STORAGE_ENDPOINT_URL="http://127.0.0.1:1", **env)
    done = vendo("agent", "--data-dir", str(tmp_path / "data"), *args, cwd=tmp_path, env=env)
    assert done.returncode == 1
    return done.stderr


def test_an_agent_without_the_shared_secrets_key_says_so(tmp_path: Path) -> None:
    """Without VENDO_SECRETS_KEY an agent could not open the secret inputs the API
    servers sealed: it warns as it starts."""
    assert "VENDO_SECRETS_KEY is not set" in _agent_stderr(tmp_path)
    key = Fernet.generate_key().decode()
    assert "VENDO_SECRETS_KEY" not in _agent_stderr(tmp_path, VENDO_SECRETS_KEY=key)
