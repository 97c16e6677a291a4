from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # CI sets VENDO_REQUIRE_POSTGRES: a PostgreSQL test that cannot reach its server
    # must fail there, not skip (see tests/store/conftest.py for the check itself).
    del config, items


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def require_postgres() -> bool:
    return os.environ.get("VENDO_REQUIRE_POSTGRES", "") not in ("", "0")


# --- databases for store / queue / api tests -------------------------------------------
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL for a fresh schema on the test PostgreSQL server (dropped after
    the session). Skips when unreachable, fails instead when VENDO_REQUIRE_POSTGRES=1."""
    import uuid

    import sqlalchemy as sa

    from vendo.store import database_url

    url = database_url(
        Path("."),
        os.environ.get("VENDO_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL),
    )
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        message = f"PostgreSQL not reachable at {url}: {exc}"
        if require_postgres():
            pytest.fail(message + " (VENDO_REQUIRE_POSTGRES is set)")
        pytest.skip(message)
    schema = f"vendo_test_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for a fresh, empty store: SQLite in tmp_path, or PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'vendo.db'}"
        return
    import sqlalchemy as sa

    url: str = request.getfixturevalue("postgres_url")
    yield url
    # Empty the schema so each test starts from nothing (migrations run again).
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        names = conn.execute(
            sa.text("select tablename from pg_tables where schemaname = current_schema()")
        ).scalars()
        for name in list(names):
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
    engine.dispose()
