"""The test setup's throwaway PostgreSQL (tests/pg_throwaway.py): on a machine with the
binaries and no server at VENDO_TEST_DATABASE_URL the database tests still run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts PostgreSQL servers (initdb, pg_ctl)

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def bindir() -> Path:
    from pg_throwaway import find_bindir

    found = find_bindir()
    if found is None:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed")
    return found


def test_the_throwaway_server_starts_serves_and_stops_by_pid(bindir: Path) -> None:
    import sqlalchemy as sa

    from pg_throwaway import start_throwaway_postgres
    from vendo.store import Store, database_url

    server = start_throwaway_postgres(bindir)
    try:
        assert not _gone(server.pid)
        url = database_url(Path("."), server.url)
        store = Store.from_settings(Path("."), url)  # the migrations run on it
        store.close()
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("select current_database()")).scalar() == "test"
        engine.dispose()
    finally:
        server.stop()
    assert _gone(server.pid)
    assert not server.root.exists()


def test_database_tests_fall_back_to_it(bindir: Path, tmp_path: Path) -> None:
    """A pytest run pointed at a closed port runs its PostgreSQL tests anyway (a skip
    would fail: VENDO_REQUIRE_POSTGRES) and leaves no server behind."""
    env = {
        **os.environ,
        "VENDO_TEST_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{_closed_port()}/test",
        "VENDO_REQUIRE_POSTGRES": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/store/test_cache.py", "-k", "postgres",
         "-p", "no:cacheprovider", "-q", "-s"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout
    line = next(x for x in done.stdout.splitlines() if "using a throwaway server" in x)
    pid = int(line.rsplit("(PID ", 1)[1].rstrip(")"))
    assert _gone(pid)
