"""Fencing (scaled mode): a worker found lost may only have stalled. Once another
process recovered its claims, its late writes (the start, logs, outputs, the end, the
job's completion) change nothing: neither what recovery decided nor the run of the
worker that claimed the job since. On real PostgreSQL, where several processes share
the queue."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from queue_support import submit

from vendo.queue import EventBus, Queue, claims
from vendo.queue.jobs import LOST_ERROR
from vendo.queue.liveness import AgentLost, Liveness
from vendo.status import pool_key
from vendo.store import FAILED, STARTING, SUCCEEDED, Store, utcnow
from vendo.store import prediction_writes as writes
from vendo.store.batch import Write
from vendo.store.tables import AgentRow

pytestmark = pytest.mark.postgres

V1 = "2" * 64
P1 = pool_key(V1)


@pytest.fixture
def store(pg_store: Store) -> Store:
    return pg_store


def _lost(store: Store, name: str) -> None:
    """As if ``name`` had not heartbeaten for a minute."""
    with store.write() as s:
        s.execute(
            sa.update(AgentRow)
            .where(AgentRow.name == name)
            .values(heartbeat_at=utcnow() - timedelta(seconds=60))
        )


def _run(store: Store, write: Write) -> Any:
    with store.transaction() as conn:
        return write(conn)


def _end(prediction_id: str, job_id: int, worker: str) -> Write:
    at = utcnow()
    return claims.record_end(
        prediction_id,
        job_id=job_id,
        worker_id=worker,
        status=SUCCEEDED,
        at=at,
        error=None,
        metrics={"predict_time": 1.0},
        output="late",
        started_at=at,
    )


def _late_writes(store: Store, prediction_id: str, job_id: int, worker: str) -> None:
    """Everything a stalled worker may still send for its run, once it runs again."""
    fence = (job_id, worker)
    assert _run(store, writes.mark_started(prediction_id, utcnow(), fence)) is False
    _run(store, writes.append_logs(prediction_id, "late log\n", fence))
    _run(store, writes.set_output(prediction_id, ["late"], fence))
    assert _run(store, _end(prediction_id, job_id, worker)) is False
    _run(store, claims.complete(job_id, worker))


def test_a_late_end_leaves_the_prediction_recovery_failed(store: Store) -> None:
    store.agents.register("a", ["cpu"], {})
    store.agents.register("b", ["cpu"], {})
    pid = submit(store, V1)
    (job,) = Queue(store, worker_id="a").claim(P1, 1)
    # while the claim holds, the fenced writes take effect
    assert _run(store, writes.mark_started(pid, utcnow(), (job.id, "a"))) is True
    _run(store, writes.append_logs(pid, "before\n", (job.id, "a")))
    _lost(store, "a")
    assert Queue(store, worker_id="b").recover_lost(30)["a"].failed == [pid]
    _late_writes(store, pid, job.id, "a")
    row = store.predictions.get(pid)
    assert row is not None and row.status == FAILED and row.error == LOST_ERROR
    assert row.output is None and row.logs == "before\n"


def test_a_late_end_leaves_the_job_another_worker_claimed_since(store: Store) -> None:
    store.agents.register("a", ["cpu"], {})
    store.agents.register("b", ["cpu"], {})
    pid = submit(store, V1)
    (job,) = Queue(store, worker_id="a").claim(P1, 1)
    _lost(store, "a")
    b = Queue(store, worker_id="b")
    assert b.recover_lost(30)["a"].requeued == [pid]  # never started: back in the queue
    (again,) = b.claim(P1, 1)
    assert again.id == job.id
    _late_writes(store, pid, job.id, "a")
    row, held = store.predictions.get(pid), store.predictions.job(pid)
    assert row is not None and row.status == STARTING and row.logs in ("", None)
    assert row.output is None
    assert held is not None and held.claimed_by == "b"
    # the worker holding the claim ends it as usual
    assert _run(store, _end(pid, job.id, "b")) is True
    row = store.predictions.get(pid)
    assert row is not None and row.status == SUCCEEDED and row.output == "late"
    assert store.predictions.job(pid) is None


def test_the_stalled_worker_learns_it_was_lost_from_its_heartbeat(store: Store) -> None:
    store.agents.register("a", ["cpu"], {})
    liveness = Liveness(Queue(store, worker_id="a"), EventBus(), interval=1, timeout=30, name="a")
    asyncio.run(liveness.beat())  # registered: beats
    _lost(store, "a")
    Queue(store, worker_id="b").recover_lost(30)
    with pytest.raises(AgentLost):
        asyncio.run(liveness.beat())
    assert store.agents.get("a") is None  # it does not come back by beating
