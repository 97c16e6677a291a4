from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import Receiver

FIXTURES = Path(__file__).parent / "fixtures"
JS_DIR = Path(__file__).parent / "js"


def _strict_skips() -> bool:
    # In CI nothing a test needs may be missing: a skip there hides a missing install
    # step, so it is reported as a failure (strict xfail still works as usual).
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and _strict_skips():
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, object, None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and _strict_skips():
        report.outcome = "failed"
        report.longrepr = f"module skipped in CI, which must run every test: {report.longrepr}"


@pytest.fixture(scope="session")
def node_client() -> str:
    """Node with npm ``replicate`` installed from tests/js's lockfile (``npm ci`` on a
    fresh clone). A missing Node is a failure: the JavaScript client is part of the
    contract (ARCHITECTURE.md §3)."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the JavaScript client tests (Node >= 18)")
    if not (JS_DIR / "node_modules" / "replicate").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, timeout=300)
    return node


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def require_postgres() -> bool:
    return os.environ.get("VENDO_REQUIRE_POSTGRES", "") not in ("", "0")


# --- databases for store / queue / api tests -------------------------------------------
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _reachable(url: str) -> str | None:
    """None when PostgreSQL answers at ``url``, else why not."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        return str(exc).splitlines()[0]
    finally:
        engine.dispose()
    return None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL for a fresh schema on the test PostgreSQL server (dropped after
    the session). The server is the one at VENDO_TEST_DATABASE_URL; when none answers
    there and ``initdb``/``pg_ctl`` are installed, a throwaway one started for this
    session (``pg_throwaway``). Skips when there is neither, fails instead when
    VENDO_REQUIRE_POSTGRES=1."""
    import uuid

    import sqlalchemy as sa

    from pg_throwaway import find_bindir, start_throwaway_postgres
    from vendo.store import database_url

    url = database_url(
        Path("."),
        os.environ.get("VENDO_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL),
    )
    throwaway = None
    why = _reachable(url)
    if why is not None:
        message = f"PostgreSQL not reachable at {url}: {why}"
        if find_bindir() is None:
            message += "; install PostgreSQL (initdb, pg_ctl) for a throwaway test server"
        else:
            try:
                throwaway = start_throwaway_postgres()
            except RuntimeError as exc:
                message += f"; the throwaway server did not start: {exc}"
        if throwaway is None:
            if require_postgres():
                pytest.fail(message + " (VENDO_REQUIRE_POSTGRES is set)")
            pytest.skip(message)
        url = database_url(Path("."), throwaway.url)
        print(f"\n{message}: using a throwaway server at {url} (PID {throwaway.pid})")
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
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
    finally:
        if throwaway is not None:
            throwaway.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for a fresh, empty store: SQLite in tmp_path, or PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'vendo.db'}"
        return
    url: str = request.getfixturevalue("postgres_url")
    yield url
    empty_schema(url)


def empty_schema(url: str) -> None:
    """Drop every table of the schema ``url`` points at, so the next test starts from
    nothing (migrations run again)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        names = conn.execute(
            sa.text("select tablename from pg_tables where schemaname = current_schema()")
        ).scalars()
        for name in list(names):
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
    engine.dispose()


@pytest.fixture
def pg_only_url(postgres_url: str) -> Iterator[str]:
    """:func:`db_url` for PostgreSQL alone (tests of what only PostgreSQL does)."""
    yield postgres_url
    empty_schema(postgres_url)


# --- the official Python client --------------------------------------------------------


@pytest.fixture
def replicate_client() -> Iterator[Callable[[str, str], Any]]:
    """Makes ``replicate.Client(token, base_url)`` on a transport closed after the test:
    the client never closes its connections itself (a ResourceWarning, an error here)."""
    import httpx
    import replicate

    transports: list[httpx.HTTPTransport] = []

    def make(token: str, base_url: str) -> Any:
        transports.append(httpx.HTTPTransport())
        return replicate.Client(api_token=token, base_url=base_url, transport=transports[-1])

    yield make
    for transport in transports:
        transport.close()


# --- a webhook receiver --------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback (tests/support/receiver.py), up for the test."""
    with Receiver() as r:
        yield r


# --- an S3 API server (moto) for the object storage tests ----------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL of moto's S3 server, started for this session as a child process
    (stopped by its PID). Skips without moto; fails instead when VENDO_REQUIRE_S3=1."""
    from s3_server import moto_missing, require_s3, start_s3_server

    why = moto_missing()
    if why is not None:
        if require_s3():
            pytest.fail(why + " (VENDO_REQUIRE_S3 is set)")
        pytest.skip(why)
    server = start_s3_server(tmp_path_factory.mktemp("moto"))
    try:
        yield server.endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty bucket on :func:`s3_server`; the test's environment has the AWS
    variables (fake credentials) that reach it. Yields its ``s3://`` URL."""
    import uuid

    import boto3

    from s3_server import AWS_ENV

    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = f"vendo-test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_server)
    client.create_bucket(Bucket=bucket)
    try:
        yield f"s3://{bucket}/files"
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)
        client.close()
