"""Migration 0006 keeps versions pushed before it valid: their ids (the bare content
digest) stay, and pushing the same package to the same model still answers them."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from vendo.app import create_app
from vendo.config import Settings
from vendo.packages import archive_bytes, content_hash, safe_extract
from vendo.store import Store, hash_token
from vendo.store.engine import create_engines, upgrade

TOKEN = "migration-admin"
SCHEMA = {"openapi": "3.0.2", "components": {"schemas": {"Output": {"type": "string"}}}}


def _project(tmp: Path) -> Path:
    project = tmp / "old-model"
    project.mkdir()
    (project / "cog.yaml").write_text('predict: "predict.py:Predictor"\n')
    (project / "predict.py").write_text(
        "from cog import BasePredictor\n\n"
        "class Predictor(BasePredictor):\n"
        "    def predict(self) -> str:\n"
        "        return 'old'\n"
    )
    return project


def _digest(project: Path, tmp: Path) -> str:
    safe_extract(io.BytesIO(archive_bytes(project)), tmp / "extracted")
    return content_hash(tmp / "extracted")


def _store_at_0005(url: str, digest: str) -> None:
    """A database as a server before 0006 left it: admin/old with version ``digest``."""
    engines = create_engines(url)
    try:
        upgrade(engines.writer, "0005")
        with engines.writer.begin() as conn:
            now = "2026-01-01 00:00:00"
            conn.execute(
                sa.text(
                    "INSERT INTO users (id, type, username, name, is_admin, created_at) "
                    "VALUES (1, 'user', 'admin', 'Administrator', true, :now)"
                ),
                {"now": now},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO tokens (id, user_id, token_hash, name, created_at) "
                    "VALUES (1, 1, :hash, 'admin', :now)"
                ),
                {"hash": hash_token(TOKEN), "now": now},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO models (id, owner_id, name, visibility, hardware, run_count,"
                    " created_at) VALUES (1, 1, 'old', 'public', 'cpu', 0, :now)"
                ),
                {"now": now},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO versions (id, model_id, created_at, cog_version,"
                    " openapi_schema, package_path, environment, config, build_log)"
                    " VALUES (:id, 1, :now, 'vendo', :schema, '', '{}', '{}', '')"
                ),
                {"id": digest, "now": now, "schema": '{"openapi": "3.0.2"}'},
            )
    finally:
        engines.dispose()


@pytest.fixture
def old_database(db_url: str, tmp_path: Path) -> tuple[str, str, Path]:
    project = _project(tmp_path)
    digest = _digest(project, tmp_path)
    _store_at_0005(db_url, digest)
    return db_url, digest, project


def test_old_version_ids_stay_and_are_found_by_digest(
    old_database: tuple[str, str, Path],
) -> None:
    url, digest, _ = old_database
    store = Store.open(url)  # upgrades to head
    try:
        version = store.catalog.version(digest)
        assert version is not None and version.digest == digest
        found = store.catalog.find_version(version.model_id, digest)
        assert found is not None and found.id == digest
    finally:
        store.close()


@pytest.fixture
async def client(old_database: tuple[str, str, Path], tmp_path: Path) -> AsyncIterator[Any]:
    url, _, _ = old_database
    database = None if url.startswith("sqlite") else url
    # SQLite: the data dir's own vendo.db is the database prepared above
    settings = Settings(data_dir=tmp_path, api_token=TOKEN, database_url=database, _env_file=None)
    app = create_app(settings, run_scheduler=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_pushing_the_same_package_again_answers_the_old_version(
    old_database: tuple[str, str, Path], client: httpx.AsyncClient
) -> None:
    _, digest, project = old_database
    headers = {"Authorization": f"Bearer {TOKEN}"}
    r = await client.post(
        "/v1/models/admin/old/versions", content=archive_bytes(project), headers=headers
    )
    assert r.status_code == 200, r.text  # existed already: nothing built
    assert r.json()["id"] == digest
    model = (await client.get("/v1/models/admin/old", headers=headers)).json()
    assert model["latest_version"]["id"] == digest
    assert model["latest_build"]["status"] == "succeeded"
