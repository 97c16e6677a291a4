"""``vendo deployments create|list|get|update|delete`` as a user types them, against a
live server (the app on a loopback socket; no model runs: these are API calls)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_support import clean_env, vendo
from support import serve_in_thread
from vendo.app import create_app
from vendo.config import Settings
from vendo.store import Store, database_url

TOKEN = "cli-deploy-token"
VERSION = "5e" * 32


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    store = Store.open(database_url(data_dir, None))
    try:
        admin, _ = store.accounts.ensure_admin(TOKEN)
        model = store.catalog.create_model(admin.id, "hello", visibility="public")
        store.catalog.create_version(model.id, VERSION, openapi_schema={})
    finally:
        store.close()
    settings = Settings(data_dir=data_dir, api_token=TOKEN, _env_file=None)
    with serve_in_thread(create_app(settings, run_scheduler=False)) as url:
        yield url


def _vendo(tmp_path: Path, url: str, *args: str) -> tuple[int, str, str]:
    env = clean_env(VENDO_API_TOKEN=TOKEN, VENDO_URL=url)
    done = vendo("deployments", *args, cwd=tmp_path, env=env, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def test_create_list_update_delete(server: str, tmp_path: Path) -> None:
    code, out, err = _vendo(
        tmp_path, server, "create", "prod", "--model", "admin/hello", "--version", VERSION,
        "--hardware", "cpu", "--min-instances", "0", "--max-instances", "2", "--json",
    )  # fmt: skip
    assert code == 0, err
    made = json.loads(out)
    assert made["current_release"]["number"] == 1
    code, out, _ = _vendo(tmp_path, server, "list")
    assert code == 0 and out.startswith("admin/prod  release 1  admin/hello:5e5e")
    assert "instances 0-2" in out
    code, out, _ = _vendo(tmp_path, server, "update", "admin/prod", "--max-instances", "3")
    assert code == 0 and "release 2" in out and "instances 0-3" in out
    code, out, err = _vendo(tmp_path, server, "delete", "admin/prod")
    assert code == 1 and err.strip().count("\n") == 0 and "409" in err  # still enabled
    code, out, _ = _vendo(
        tmp_path, server, "update", "admin/prod", "--min-instances", "0", "--max-instances", "0"
    )
    assert code == 0 and "release 3" in out and "disabled" in out
    code, out, _ = _vendo(tmp_path, server, "delete", "admin/prod")
    assert code == 0 and out.strip() == "deleted admin/prod"
    code, out, err = _vendo(tmp_path, server, "get", "admin/prod")
    assert code == 1 and "404" in err


def test_bad_fields_are_one_line(server: str, tmp_path: Path) -> None:
    code, _, err = _vendo(
        tmp_path, server, "create", "prod", "--model", "admin/hello", "--version", VERSION,
        "--hardware", "tpu-9000", "--min-instances", "0", "--max-instances", "1",
    )  # fmt: skip
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "hardware must be one of" in err
    code, _, err = _vendo(tmp_path, server, "update", "admin/prod")
    assert code == 2 and "nothing to change" in err


def test_url_and_token_after_the_subcommand(server: str, tmp_path: Path) -> None:
    # as `vendo push` and `vendo run` take them (docs/deployments.md, "The command line")
    env = clean_env()
    done = vendo("deployments", "list", "--url", server, "--token", TOKEN, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    done = vendo(
        "deployments", "--url", "http://127.0.0.1:9", "--token", "wrong",
        "get", "admin/prod", "--url", server, "--token", TOKEN, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 1 and "404" in done.stderr  # reached the server, authenticated


def test_a_wrong_token_says_where_tokens_come_from(server: str, tmp_path: Path) -> None:
    done = vendo(
        "deployments", "list", "--token", "r8_wrong", cwd=tmp_path, env=clean_env(VENDO_URL=server)
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: 401: ")
    assert "--token, VENDO_API_TOKEN, REPLICATE_API_TOKEN" in line
