"""Scaled mode (#15): two real ``vendo serve`` processes on one PostgreSQL database and
one S3 bucket (moto's server). One runs the models; the other, ``--no-runners``, only
takes requests, and answers for every prediction as if it ran it: create, get, the SSE
stream live, the output files, cancel."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from streaming_support import sse_events

from agent_support import scaled_env
from pg_throwaway import find_bindir, start_throwaway_postgres
from serve_support import serving, vendo
from support import until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]

MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "scaled_files"
TOKEN = "scaled-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


class Cluster:
    """The two servers: ``runner`` (runs models) and ``api`` (``--no-runners``)."""

    def __init__(self, runner: str, api: str, version: str, bucket: str, endpoint: str) -> None:
        self.runner, self.api, self.version = runner, api, version
        self.bucket, self.endpoint = bucket, endpoint

    def create(self, url: str, **values: Any) -> dict[str, Any]:
        body = {"version": self.version, "input": values}
        r = httpx.post(f"{url}/v1/predictions", json=body, headers=HEADERS, timeout=30)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def get(self, url: str, prediction_id: str) -> dict[str, Any]:
        r = httpx.get(f"{url}/v1/predictions/{prediction_id}", headers=HEADERS, timeout=30)
        assert r.status_code == 200, r.text
        return dict(r.json())


@contextmanager
def two_servers(tmp_path: Path, database: str, bucket_url: str, endpoint: str) -> Iterator[Cluster]:
    """The runner server and the API-only one on ``database`` and ``bucket_url``, with
    the model in tests/fixtures/scaled_files pushed."""
    shared = scaled_env(database=database, bucket=bucket_url, endpoint=endpoint, token=TOKEN)
    runner_dir, api_dir = tmp_path / "runner", tmp_path / "api"
    runner_env = {**shared, "VENDO_DATA_DIR": str(runner_dir)}
    api_env = {**shared, "VENDO_DATA_DIR": str(api_dir)}
    (tmp_path / "r").mkdir()
    (tmp_path / "a").mkdir()
    # one after the other: each start runs the migrations
    with (
        serving(tmp_path / "r", runner_env, "--port", "0", data_dir=runner_dir) as (_, runner),
        serving(tmp_path / "a", api_env, "--port", "0", "--no-runners", data_dir=api_dir) as (
            _,
            api,
        ),
    ):
        pushed = vendo("push", str(MODEL), "admin/scaled", "-q", cwd=tmp_path, env=runner_env)
        assert pushed.returncode == 0, pushed.stderr
        model = httpx.get(f"{api}/v1/models/admin/scaled", headers=HEADERS, timeout=30)
        version = model.json()["latest_version"]["id"]
        bucket = bucket_url.removeprefix("s3://").split("/")[0]
        yield Cluster(runner, api, version, bucket, endpoint)


@pytest.fixture
def cluster(tmp_path: Path, pg_only_url: str, s3_bucket: str, s3_server: str) -> Iterator[Cluster]:
    with two_servers(tmp_path, pg_only_url, s3_bucket, s3_server) as found:
        yield found


def _stream(url: str) -> list[dict[str, Any]]:
    with httpx.stream("GET", url, timeout=120) as r:
        assert r.status_code == 200, r.read()
        return [e for e in sse_events(r.iter_lines()) if e.get("event") in ("output", "done")]


def test_the_api_only_server_answers_for_a_prediction_the_other_runs(cluster: Cluster) -> None:
    created = cluster.create(cluster.api, count=3, seconds=0)
    # the stream of a prediction running in the other process, followed live here
    events = _stream(created["urls"]["stream"])
    assert [e["event"] for e in events] == ["output", "output", "output", "done"]
    urls = [e["data"] for e in events[:3]]
    for n, url in enumerate(urls, 1):
        assert url.startswith(cluster.api + "/v1/files/")
        # downloaded through the API-only server, from the bucket
        r = httpx.get(url, timeout=30)
        assert r.status_code == 200 and r.text == f"part {n} " * n
        assert r.headers["content-disposition"] == f'inline; filename="part{n}.txt"'
    done = cluster.get(cluster.api, created["id"])
    assert done["status"] == "succeeded" and "wrote part 3" in done["logs"]
    assert cluster.get(cluster.runner, created["id"])["status"] == "succeeded"
    # the files are in the bucket, not in either server's data dir
    s3 = boto3.client("s3", endpoint_url=cluster.endpoint)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=cluster.bucket)["Contents"]]
    s3.close()
    assert sum(k.endswith(("part1.txt", "part2.txt", "part3.txt")) for k in keys) == 3
    assert any(k.startswith("files/packages/") for k in keys)  # the pushed package


def test_a_cancel_sent_to_the_api_only_server_reaches_the_running_one(cluster: Cluster) -> None:
    created = cluster.create(cluster.api, count=1, seconds=600)
    until(
        lambda: cluster.get(cluster.api, created["id"])["status"] == "processing",
        timeout=120,
        what="the prediction to run on the other server",
    )
    r = httpx.post(
        f"{cluster.api}/v1/predictions/{created['id']}/cancel", headers=HEADERS, timeout=30
    )
    assert r.status_code == 200, r.text
    until(
        lambda: cluster.get(cluster.runner, created["id"])["status"] == "canceled",
        timeout=60,
        what="the cancel to reach the server running the prediction",
    )


def test_both_servers_survive_a_database_restart(
    tmp_path: Path, s3_bucket: str, s3_server: str
) -> None:
    """A restart of PostgreSQL cuts every connection: both servers reconnect (the pool
    checks a connection before use; the relay listens again) and go on answering."""
    bindir = find_bindir()
    if bindir is None:
        pytest.fail("initdb/pg_ctl are needed to restart a throwaway PostgreSQL")
    database = start_throwaway_postgres(bindir)
    try:
        with two_servers(tmp_path, database.url, s3_bucket, s3_server) as cluster:
            before = cluster.create(cluster.api, count=1)
            assert [e["event"] for e in _stream(before["urls"]["stream"])] == ["output", "done"]
            database.restart()
            after = cluster.create(cluster.api, count=2)
            # live if the relay listens again by then; else from the store when it ends
            events = _stream(after["urls"]["stream"])
            assert [e["event"] for e in events] == ["output", "output", "done"]
            assert cluster.get(cluster.api, after["id"])["status"] == "succeeded"
            assert cluster.get(cluster.runner, before["id"])["status"] == "succeeded"
            # the relay is back: a cancel through the API-only server reaches the runner
            slow = cluster.create(cluster.api, count=1, seconds=600)
            until(
                lambda: cluster.get(cluster.api, slow["id"])["status"] == "processing",
                timeout=120,
                what="the prediction to run on the other server",
            )
            until(
                lambda: httpx.post(
                    f"{cluster.api}/v1/predictions/{slow['id']}/cancel", headers=HEADERS,
                    timeout=30,
                ).json()["status"] == "canceled",
                timeout=60,
                what="a cancel to reach the runner over the reconnected relay",
            )  # fmt: skip
    finally:
        database.stop()
