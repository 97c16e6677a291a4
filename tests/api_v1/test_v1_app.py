from __future__ import annotations

import stat
from pathlib import Path

import httpx

from vendo.app import TOKEN_FILE, create_app
from vendo.config import Settings


async def _account(app, token: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await c.get("/v1/account", headers={"Authorization": f"Bearer {token}"})


async def test_fresh_data_dir_gets_an_admin_token_file(tmp_path: Path, capsys) -> None:
    settings = Settings(data_dir=tmp_path / "d", _env_file=None)
    app = create_app(settings, run_scheduler=False)
    async with app.router.lifespan_context(app):
        path = tmp_path / "d" / TOKEN_FILE
        token = path.read_text().strip()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert token in capsys.readouterr().err
        r = await _account(app, token)
        assert r.status_code == 200 and r.json()["username"] == "admin"
    # a second start keeps the admin and prints nothing
    app = create_app(settings, run_scheduler=False)
    async with app.router.lifespan_context(app):
        assert token not in capsys.readouterr().err
        assert (await _account(app, token)).status_code == 200


async def test_configured_token_becomes_the_admins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", api_token="given", _env_file=None)
    app = create_app(settings, run_scheduler=False)
    async with app.router.lifespan_context(app):
        assert (await _account(app, "given")).json()["username"] == "admin"
    assert not (tmp_path / "d" / TOKEN_FILE).exists()


async def test_openapi_document_lists_the_routes(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "d", _env_file=None), run_scheduler=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        doc = (await c.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert doc["paths"]["/v1/predictions"]["post"]["summary"].startswith("Create a prediction")
    assert "query" in doc["paths"]["/v1/models"]
    assert not doc["paths"]["/v1/files/{id}/download"]["get"].get("security")
