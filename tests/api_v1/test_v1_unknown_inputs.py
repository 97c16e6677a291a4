"""Unknown inputs (issue 16): ignored as on Cog, but the prediction's logs start with a
warning naming each and the closest known input, on every path a prediction takes
(queued, ``Prefer: wait``) and in what ``vendo run`` prints. The real scheduler and a
real runner child; ``vendo run`` against a real ``vendo serve``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_v1_support import (
    ADMIN_TOKEN,
    Api,
    LiveServer,
    add_local_version,
    echo_api,
)

from support import until_async
from vendo.store import Store, database_url

VERSION = "f3" * 32
TXT = 'warning: input "txt" is not an input of this model and was ignored (did you mean "text"?)'


@pytest.fixture
async def api(tmp_path: Path, db_url: str) -> AsyncIterator[Api]:
    async with echo_api(tmp_path, db_url, VERSION) as api:
        yield api


async def test_the_logs_start_with_a_warning_per_ignored_input(api: Api) -> None:
    body = {"version": VERSION, "input": {"txt": "hello", "Sleep": 0, "zzzz": 1}}
    r = await api.client.post("/v1/predictions", json=body, headers={**api.alice, "Prefer": "wait"})
    assert r.status_code == 201, r.text
    done = r.json()
    assert done["status"] == "succeeded" and done["output"] == "hi"  # defaults, as on Cog
    lines = done["logs"].splitlines()
    assert lines[0] == (
        'warning: input "Sleep" is not an input of this model and was ignored '
        '(did you mean "sleep"?)'
    ), done["logs"]
    assert lines[1] == TXT
    assert lines[2] == 'warning: input "zzzz" is not an input of this model and was ignored'
    assert lines[3] == "echoing hi"
    assert done["input"] == {}  # what the caller sees is unchanged: known inputs only

    # queued (no wait): the same, as stored
    r = await api.client.post(
        "/v1/predictions",
        json={"version": VERSION, "input": {"txt": "x", "text": "y"}},
        headers=api.alice,
    )
    pid = r.json()["id"]

    async def succeeded() -> dict[str, Any] | None:
        row = (await api.client.get(f"/v1/predictions/{pid}", headers=api.alice)).json()
        return row if row["status"] == "succeeded" else None

    row = await until_async(succeeded, timeout=10, what="the queued prediction")
    assert row["output"] == "y"
    assert row["logs"].splitlines()[:2] == [TXT, "echoing y"]

    # nothing ignored, no warning
    r = await api.client.post(
        "/v1/predictions",
        json={"version": VERSION, "input": {"text": "z"}},
        headers={**api.alice, "Prefer": "wait"},
    )
    assert r.json()["logs"] == "echoing z\n"


def test_vendo_run_prints_the_warning(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = Store.open(database_url(data, None))
    try:
        admin, _ = store.accounts.ensure_admin(ADMIN_TOKEN)
        model = store.catalog.create_model(admin.id, "echo", visibility="public")
        add_local_version(store, model.id, VERSION, concurrency_max=1)
    finally:
        store.close()
    server = LiveServer(data, tmp_path / "serve.log", ADMIN_TOKEN)
    server.start()
    try:
        env = {**os.environ, "VENDO_URL": server.url, "VENDO_API_TOKEN": ADMIN_TOKEN}
        result = subprocess.run(
            [sys.executable, "-m", "vendo", "run", "admin/echo", "-i",
             "txt=hello"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    assert TXT in result.stderr.splitlines(), result.stderr
    assert result.stdout.strip() == "hi"
