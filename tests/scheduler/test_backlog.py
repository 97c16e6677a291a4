"""Start-up recovery reads claimed jobs only; queued ones reach the claim path as they
are, which keeps the restart policy for them: a prediction already ``processing``
(started under an earlier claim) is failed as interrupted, never run again. Real
stores (SQLite and PostgreSQL) and real runner children (tests/fixtures/plt_echo)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_pool import Platform, running_platform

from vendo.queue import INTERRUPTED_ERROR
from vendo.status import pool_key
from vendo.store import PROCESSING, SUCCEEDED


@pytest.fixture
async def platform(tmp_path: Path, db_url: str) -> AsyncIterator[Platform]:
    async with running_platform(tmp_path, db_url) as p:
        yield p


async def test_a_queued_job_of_a_processing_prediction_fails_interrupted(
    platform: Platform,
) -> None:
    version = platform.version("plt_echo")
    # A job put back in the queue after its run began (another server's claim that
    # stopped, say): its model must not run it a second time.
    row = platform.row(version, text="begun elsewhere")
    platform.queue.submit(row)
    assert platform.store.predictions.mark_started(row.id)
    platform.scheduler.notify(version)
    ended = await platform.wait(row.id)
    assert ended.status == "failed" and ended.error == INTERRUPTED_ERROR
    assert "echoing" not in ended.logs
    assert platform.store.predictions.job(row.id) is None
    # the queue goes on behind it
    after = await platform.wait(platform.submit(version, text="next"))
    assert after.status == SUCCEEDED and after.output == "next"


async def test_recovery_at_start_leaves_queued_jobs_to_the_claim_path(tmp_path: Path) -> None:
    first = Platform(tmp_path)
    version = first.version("plt_echo")
    queued = [first.submit(version, text=f"q{i}") for i in range(3)]
    begun = first.row(version, text="begun")
    first.queue.submit(begun)
    jobs = first.queue.claim(pool_key(version), 1)  # the oldest: queued[0]
    first.queue.requeue(jobs[0].id)
    first.store.predictions.mark_started(queued[0])  # its run had begun before the release
    report = first.queue.recover()
    # nothing claimed: recovery has nothing to do, whatever is queued
    assert (report.requeued, report.failed, report.dropped) == ([], [], [])
    first.store.close()
    async with running_platform(tmp_path) as second:
        interrupted = await second.wait(queued[0])
        assert interrupted.status == "failed" and interrupted.error == INTERRUPTED_ERROR
        for pid in [*queued[1:], begun.id]:
            row = await second.wait(pid)
            assert row.status == SUCCEEDED, row.error
        assert second.store.predictions.get(queued[0]).status != PROCESSING  # type: ignore[union-attr]
