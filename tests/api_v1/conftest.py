from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_v1_support import ADMIN_TOKEN, PRIVATE_VERSION, SCHEMA, VERSION, Api

from vendo.api.v1.context import Platform
from vendo.app import create_app
from vendo.config import Settings


@pytest.fixture
def scheduler_factory() -> Any:
    """Override in a test module to run predictions (see EchoScheduler)."""
    return None


@pytest.fixture
async def api(tmp_path: Path, scheduler_factory: Any, db_url: str) -> AsyncIterator[Api]:
    # db_url runs every route test on SQLite and on PostgreSQL
    database = None if db_url.startswith("sqlite") else db_url
    settings = Settings(
        data_dir=tmp_path / "data", api_token=ADMIN_TOKEN, database_url=database, _env_file=None
    )
    app = create_app(settings, run_scheduler=False, scheduler_factory=scheduler_factory)
    async with app.router.lifespan_context(app):
        p: Platform = app.state.platform
        store = p.store
        alice = store.accounts.create_user("alice")
        bob = store.accounts.create_user("bob")
        alice_token = store.accounts.create_token(alice.id)
        bob_token = store.accounts.create_token(bob.id)
        public = store.catalog.create_model(alice.id, "hello", visibility="public", hardware="cpu")
        store.catalog.create_version(
            public.id, VERSION, openapi_schema=SCHEMA, cog_version="0.13.7"
        )
        private = store.catalog.create_model(
            alice.id, "secret", visibility="private", hardware="cpu"
        )
        store.catalog.create_version(private.id, PRIVATE_VERSION, openapi_schema=SCHEMA)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield Api(
                client=c,
                platform=p,
                admin={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                alice={"Authorization": f"Bearer {alice_token}"},
                bob={"Authorization": f"Token {bob_token}"},
            )
