"""Agents (scaled mode, #15): the ``agents`` table, the recovery of a lost agent's jobs
by another process, and the cancel flag a running process finds in the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from vendo.queue import Queue
from vendo.queue.jobs import LOST_ERROR
from vendo.status import pool_key
from vendo.store import CANCELED, FAILED, STARTING, PredictionRow, Store, new_id, utcnow
from vendo.store.tables import AgentRow

V1 = "1" * 64
P1 = pool_key(V1)


@pytest.fixture
def store(db_url: str):
    s = Store.open(db_url)
    yield s
    s.close()


def _submit(queue: Queue, owner: int) -> str:
    row = PredictionRow(
        id=new_id(), owner_id=owner, model="o/n", version_id=V1, input={}, created_at=utcnow()
    )
    queue.submit(row)
    return row.id


def _silent_for(store: Store, name: str, seconds: float) -> None:
    """As if ``name`` had not heartbeaten for ``seconds``."""
    with store.write() as s:
        s.execute(
            sa.update(AgentRow)
            .where(AgentRow.name == name)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def test_an_agent_registers_heartbeats_and_leaves(store: Store) -> None:
    row = store.agents.register("gpu-1", ["gpu-t4"], {"cpus": 8, "gpus": ["T4"]})
    assert row.heartbeat_at == row.started_at
    found = store.agents.get("gpu-1")
    assert found is not None and found.hardware == ["gpu-t4"] and found.capacity["cpus"] == 8
    assert store.agents.heartbeat("gpu-1") is True
    assert [a.name for a in store.agents.every()] == ["gpu-1"]
    store.agents.remove("gpu-1")
    assert store.agents.heartbeat("gpu-1") is False  # gone: it must not go on
    assert store.agents.every() == []


def test_a_lost_agents_jobs_are_recovered_once_by_another_process(store: Store) -> None:
    user = store.accounts.create_user("u")
    store.agents.register("a", ["cpu"], {})
    store.agents.register("b", ["cpu"], {})
    mine, theirs = Queue(store, worker_id="b"), Queue(store, worker_id="a")
    unstarted, running, canceled, kept = (_submit(mine, user.id) for _ in range(4))
    assert [j.prediction_id for j in theirs.claim(P1, 3)] == [unstarted, running, canceled]
    assert [j.prediction_id for j in mine.claim(P1, 1)] == [kept]
    store.predictions.mark_started(running)
    assert mine.request_cancel(canceled) is True
    assert theirs.cancels_requested() == [(canceled, "canceled")]
    # not yet past the timeout: nothing happens
    assert mine.recover_lost(30) == {}
    _silent_for(store, "a", 60)
    done = mine.recover_lost(30)
    assert list(done) == ["a"]
    report = done["a"]
    assert (report.requeued, report.failed, report.canceled) == ([unstarted], [running], [canceled])
    failed = store.predictions.get(running)
    assert failed is not None and failed.status == FAILED and failed.error == LOST_ERROR
    ended = store.predictions.get(canceled)
    assert ended is not None and ended.status == CANCELED
    back = store.predictions.get(unstarted)
    assert back is not None and back.status == STARTING
    assert store.agents.get("a") is None and store.agents.heartbeat("a") is False
    # once: another look finds nothing; b's own claim was never touched
    assert mine.recover_lost(30) == {}
    job = store.predictions.job(kept)
    assert job is not None and job.claimed_by == "b"
    assert [j.prediction_id for j in mine.claim(P1, 5)] == [unstarted]


def test_a_process_never_recovers_itself(store: Store) -> None:
    user = store.accounts.create_user("u")
    store.agents.register("a", ["cpu"], {})
    queue = Queue(store, worker_id="a")
    pid = _submit(queue, user.id)
    queue.claim(P1, 1)
    _silent_for(store, "a", 60)
    assert queue.recover_lost(30) == {}
    job = store.predictions.job(pid)
    assert job is not None and job.claimed_by == "a"


def test_a_cancel_flag_is_only_set_on_a_claimed_job(store: Store) -> None:
    user = store.accounts.create_user("u")
    queue = Queue(store, worker_id="w")
    pid = _submit(queue, user.id)
    assert queue.request_cancel(pid) is False  # queued: cancel_queued ends it instead
    queue.claim(P1, 1)
    assert queue.request_cancel(pid, "deadline") is True
    assert queue.cancels_requested() == [(pid, "deadline")]
    assert Queue(store, worker_id="other").cancels_requested() == []
