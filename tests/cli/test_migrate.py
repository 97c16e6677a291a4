"""``vendo migrate``: the schema upgrade a scaled deployment runs as a job (#15)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from serve_support import clean_env, vendo


def test_migrate_upgrades_the_database_and_says_to_what(tmp_path: Path, db_url: str) -> None:
    env = clean_env(VENDO_DATA_DIR=str(tmp_path / "data"))
    if not db_url.startswith("sqlite"):
        env["VENDO_DATABASE_URL"] = db_url
    done = vendo("migrate", cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    url = (
        db_url if not db_url.startswith("sqlite") else f"sqlite:///{tmp_path / 'data' / 'vendo.db'}"
    )
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        revision = conn.scalar(sa.text("select version_num from alembic_version"))
        assert conn.scalar(sa.text("select count(*) from predictions")) == 0
    engine.dispose()
    assert f"revision {revision}" in done.stderr


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    env = clean_env(VENDO_DATABASE_URL="postgresql://vendo:pw@127.0.0.1:1/none")
    done = vendo("migrate", cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: cannot upgrade the database at ")
    assert "Traceback" not in done.stderr and "pw@" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
