"""Orphaned claims (scaled mode): on PostgreSQL every claimer registers in ``agents``
before it claims, so a job claimed by a worker without a row (a server of an earlier
version that claimed as ``<host>:embedded`` and died, a worker restarted under another
name) would stay claimed for ever. The lost-agent watch recovers such claims by the
restart policy, once, however many processes watch at once. On real PostgreSQL."""

from __future__ import annotations

import asyncio
import threading

import pytest
import sqlalchemy as sa
from queue_support import submit

from vendo.queue import EventBus, Queue
from vendo.queue.jobs import LOST_ERROR
from vendo.queue.liveness import Liveness
from vendo.status import pool_key
from vendo.store import (
    CANCELED,
    FAILED,
    STARTING,
    Store,
)
from vendo.store.tables import JobRow

pytestmark = pytest.mark.postgres

V1 = "3" * 64
P1 = pool_key(V1)
OLD = "old-host:embedded"  # a server of an earlier version: it never registered


@pytest.fixture
def store(pg_store: Store) -> Store:
    return pg_store


@pytest.fixture
def other(pg_only_url: str):
    """A second process's store: its own connections."""
    s = Store.open(pg_only_url)
    yield s
    s.close()


def _orphans(store: Store, count: int) -> tuple[list[str], list[str]]:
    """``count`` jobs claimed by the unregistered ``OLD``, half of them running:
    (unstarted, running)."""
    ids = [submit(store, V1) for _ in range(count)]
    claimed = Queue(store, worker_id=OLD).claim(P1, count)
    assert sorted(j.prediction_id for j in claimed) == sorted(ids)
    running = ids[: count // 2]
    for pid in running:
        store.predictions.mark_started(pid)
    return ids[count // 2 :], running


def test_claims_of_a_worker_without_a_row_are_recovered_by_the_policy(store: Store) -> None:
    store.agents.register("b", ["cpu"], {})
    unstarted, running = _orphans(store, 2)
    canceled = submit(store, V1)
    Queue(store, worker_id=OLD).claim(P1, 1)
    b = Queue(store, worker_id="b")
    assert b.request_cancel(canceled) is True
    kept = submit(store, V1)
    b.claim(P1, 1)  # a registered worker's claim: never an orphan
    done = b.recover_lost(30)
    assert list(done) == [OLD]
    report = done[OLD]
    assert report.unregistered is True
    assert (report.requeued, report.failed, report.canceled) == (unstarted, running, [canceled])
    failed = store.predictions.get(running[0])
    assert failed is not None and failed.status == FAILED and failed.error == LOST_ERROR
    assert store.predictions.job(running[0]) is None
    ended = store.predictions.get(canceled)
    assert ended is not None and ended.status == CANCELED
    back, job = store.predictions.get(unstarted[0]), store.predictions.job(unstarted[0])
    assert back is not None and back.status == STARTING
    assert job is not None and job.state == "queued" and job.claimed_by is None
    held = store.predictions.job(kept)
    assert held is not None and held.claimed_by == "b"
    assert b.recover_lost(30) == {}  # once
    assert [j.prediction_id for j in b.claim(P1, 5)] == unstarted


def test_a_process_leaves_its_own_claims_to_its_heartbeat(store: Store) -> None:
    """A claimer whose row is gone learns it from its heartbeat (and stops), not by
    recovering itself; any other process takes its claims."""
    pid = submit(store, V1)
    Queue(store, worker_id="a").claim(P1, 1)
    assert Queue(store, worker_id="a").recover_lost(30) == {}
    assert Queue(store, worker_id="b").recover_lost(30)["a"].requeued == [pid]


def test_the_watch_does_not_touch_sqlite_claims(tmp_path) -> None:
    """On SQLite the embedded server claims unregistered: nothing is orphaned there."""
    store = Store.open(f"sqlite:///{tmp_path / 'vendo.db'}")
    try:
        pid = submit(store, V1)
        Queue(store, worker_id=OLD).claim(P1, 1)
        assert Queue(store, worker_id="b").recover_lost(30) == {}
        job = store.predictions.job(pid)
        assert job is not None and job.claimed_by == OLD
    finally:
        store.close()


def test_claims_another_process_is_recovering_are_skipped_not_waited_for(
    store: Store, other: Store
) -> None:
    unstarted, running = _orphans(store, 2)
    with other.write() as s:
        # another process mid-recovery: it holds the jobs' row locks
        s.execute(sa.select(JobRow.id).where(JobRow.claimed_by == OLD).with_for_update()).all()
        assert Queue(store, worker_id="b").recover_lost(30) == {}
    done = Queue(other, worker_id="c").recover_lost(30)
    assert (done[OLD].requeued, done[OLD].failed) == (unstarted, running)
    assert Queue(store, worker_id="b").recover_lost(30) == {}


def _beat(watcher: Liveness, start: threading.Barrier) -> None:
    start.wait()  # both at once
    asyncio.run(watcher.beat())


def test_two_processes_watching_at_once_recover_each_claim_once(store: Store, other: Store) -> None:
    """Both watchers beat at the same moment, round after round: every orphan is
    recovered by exactly one, neither fails, and each failure is published once."""
    buses = [EventBus(), EventBus()]
    watchers = [
        Liveness(Queue(s, worker_id=n), bus, interval=1, timeout=30, name=n)
        for s, n, bus in ((store, "b", buses[0]), (other, "c", buses[1]))
    ]
    store.agents.register("b", ["cpu"], {})
    store.agents.register("c", ["cpu"], {})
    for _ in range(5):
        unstarted, running = _orphans(store, 6)
        start = threading.Barrier(2)
        threads = [threading.Thread(target=_beat, args=(w, start)) for w in watchers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seen = [pid for w in watchers for pid in w.recovered.pop(OLD, [])]
        assert sorted(seen) == sorted(unstarted + running)
        for pid in running:
            done = [e for bus in buses for e in bus.history(pid) or [] if e.event == "done"]
            assert len(done) == 1
            row = store.predictions.get(pid)
            assert row is not None and row.error == LOST_ERROR
        # the requeued ones wait in the queue, claimed by nobody
        assert sorted(j.prediction_id for j in Queue(store, worker_id="b").claim(P1, 10)) == (
            sorted(unstarted)
        )
        for pid in unstarted:
            store.predictions.finish(pid, CANCELED, cancel_reason="canceled")
        Queue(store, worker_id="b").recover(None)  # clear the round's claims
