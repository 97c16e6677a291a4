"""The job writes of a run: claim queued jobs; complete, requeue or end them.

Like :mod:`vendo.store.prediction_writes`, each function returns a
:data:`~vendo.store.batch.Write` for the scheduler's group commit (or any Core
transaction); :class:`~vendo.queue.jobs.Queue` runs the same statements one at a time.
A job is claimed by one scheduler only.

*Fencing* (scaled mode): a worker found lost has its claims recovered by another process
(:meth:`~vendo.queue.jobs.Queue.recover_lost`) while it may still be alive, only stalled.
Its late writes for a claimed job take effect only while the job is still claimed by it
(``jobs.claimed_by``): the end of a run deletes the worker's own job first and finishes
the prediction only when that deleted a row, so a late end never overwrites what recovery
decided nor ends a job another worker has claimed since. A prediction without a job (a
deferred run's end, inserted at once) has the older guard alone: it changes only while
unfinished.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

import sqlalchemy as sa

from vendo.status import JobState
from vendo.store import utcnow
from vendo.store.batch import Write
from vendo.store.prediction_writes import FINISH, finish_params
from vendo.store.tables import JobRow, PredictionRow, UTCDateTime, job_queued

__all__ = ["Claimed", "Job", "claim", "claim_jobs", "complete", "record_end", "requeue"]


@dataclass(frozen=True)
class Job:
    """A claimed unit of work: run ``prediction_id`` on ``version_id`` in the pool
    ``pool`` (see :func:`vendo.status.pool_key`)."""

    id: int
    kind: str  # "predict" | "train"
    prediction_id: str
    version_id: str
    created_at: datetime
    pool: str


class Claimed(NamedTuple):
    """A claimed job with what the scheduler needs of its prediction (one read less).
    A tuple: one is made per prediction, and a frozen dataclass costs several times as
    much to build."""

    job: Job
    status: str | None  # None: the prediction is gone
    run_input: dict[str, Any] | None = None
    deadline: datetime | None = None
    owner_id: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    metrics: dict[str, Any] | None = None
    webhook: str | None = None


_jobs = cast(sa.Table, JobRow.__table__)
_preds = cast(sa.Table, PredictionRow.__table__)
_TIME = UTCDateTime()

# A pool's queued jobs in ix_jobs_claim's order (the same order as by id, given the
# pool): see job_queued for why so.
_QUEUED_IDS = (
    sa.select(_jobs.c.id)
    .where(_jobs.c.pool == sa.bindparam("p_pool"), job_queued())
    .order_by(_jobs.c.state, _jobs.c.id)
    .limit(sa.bindparam("p_limit", type_=sa.Integer))
)
_ANY_QUEUED = (
    sa.select(_jobs.c.id)
    .where(_jobs.c.pool == sa.bindparam("p_pool"), job_queued())
    .order_by(_jobs.c.state, _jobs.c.id)
    .limit(1)
)
_CLAIM_COLUMNS = (
    _jobs.c.id,
    _jobs.c.kind,
    _jobs.c.prediction_id,
    _jobs.c.version_id,
    _jobs.c.created_at,
    _jobs.c.pool,
)
# PostgreSQL may run a LIMITed sub-select of an UPDATE more than once and so claim more
# rows than asked for: there the ids are locked first (SKIP LOCKED: concurrent agents
# never wait on or double-claim a row), then updated. SQLite's one writer serializes
# claims, so one statement does.
_CLAIM_LOCK = _QUEUED_IDS.with_for_update(skip_locked=True)
_CLAIMED_VALUES = {
    "state": JobState.CLAIMED,
    "claimed_at": sa.bindparam("p_at", type_=_TIME),
    "claimed_by": sa.bindparam("p_worker"),
}
_CLAIM_IDS = (
    _jobs.update()
    .where(_jobs.c.id.in_(sa.bindparam("p_ids", expanding=True)), _jobs.c.state == JobState.QUEUED)
    .values(**_CLAIMED_VALUES)
    .returning(*_CLAIM_COLUMNS)
)
_CLAIM_OLDEST = (
    _jobs.update()
    .where(_jobs.c.id.in_(_QUEUED_IDS.scalar_subquery()), _jobs.c.state == JobState.QUEUED)
    .values(**_CLAIMED_VALUES)
    .returning(*_CLAIM_COLUMNS)
)
_CLAIMED_PREDICTIONS = sa.select(
    _preds.c.id,
    _preds.c.status,
    _preds.c.run_input,
    _preds.c.deadline,
    _preds.c.owner_id,
    _preds.c.created_at,
    _preds.c.started_at,
    _preds.c.metrics,
    _preds.c.webhook,
).where(_preds.c.id.in_(sa.bindparam("p_ids", expanding=True)))
_DELETE_JOB = _jobs.delete().where(_jobs.c.id == sa.bindparam("p_job"))
_DELETE_OWN_JOB = _DELETE_JOB.where(_jobs.c.claimed_by == sa.bindparam("p_worker"))
_RELEASE_JOB = (
    _jobs.update()
    .where(_jobs.c.id == sa.bindparam("p_job"))
    .values(state=JobState.QUEUED, claimed_at=sa.null(), claimed_by=sa.null())
)
_RELEASE_OWN_JOB = _RELEASE_JOB.where(_jobs.c.claimed_by == sa.bindparam("p_worker"))


def claim_jobs(conn: sa.Connection, pool: str, limit: int, worker_id: str) -> list[Job]:
    """Claim up to ``limit`` queued jobs of a pool, oldest first, in ``conn``'s
    transaction."""
    if limit <= 0:
        return []
    at = utcnow()
    if conn.dialect.name == "sqlite":
        rows = conn.execute(
            _CLAIM_OLDEST,
            {"p_pool": pool, "p_limit": limit, "p_at": at, "p_worker": worker_id},
        ).all()
    else:
        ids = list(conn.execute(_CLAIM_LOCK, {"p_pool": pool, "p_limit": limit}).scalars())
        if not ids:
            return []
        rows = conn.execute(_CLAIM_IDS, {"p_ids": ids, "p_at": at, "p_worker": worker_id}).all()
    # RETURNING promises no order.
    return sorted((Job(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows), key=lambda j: j.id)


def claim(pool: str, limit: int, worker_id: str) -> Write:
    """Claim up to ``limit`` queued jobs of a pool, oldest first, and read their
    predictions in the same transaction. The result: ``(claimed, more)``, ``more``
    telling whether jobs of the pool are still queued behind them."""

    def write(conn: sa.Connection) -> tuple[list[Claimed], bool]:
        claimed = _with_predictions(conn, claim_jobs(conn, pool, limit, worker_id))
        more = False
        if len(claimed) >= limit:
            more = conn.execute(_ANY_QUEUED, {"p_pool": pool}).first() is not None
        return claimed, more

    return write


def _with_predictions(conn: sa.Connection, jobs: list[Job]) -> list[Claimed]:
    if not jobs:
        return []
    found = {
        r.id: r
        for r in conn.execute(_CLAIMED_PREDICTIONS, {"p_ids": [j.prediction_id for j in jobs]})
    }
    claimed = []
    for job in jobs:
        r = found.get(job.prediction_id)
        if r is None:
            claimed.append(Claimed(job, None))
            continue
        claimed.append(
            Claimed(
                job,
                r.status,
                r.run_input,
                r.deadline,
                r.owner_id,
                r.created_at,
                r.started_at,
                r.metrics,
                r.webhook,
            )
        )
    return claimed


def record_end(
    prediction_id: str,
    *,
    job_id: int | None = None,
    worker_id: str | None = None,
    then: Write | None = None,
    **values: Any,
) -> Write:
    """Record the terminal state unless the prediction is terminal already, and delete
    its job, in one transaction (``values``: see
    :func:`vendo.store.prediction_writes.finish_params`); ``then`` joins that
    transaction when the prediction changed (a training's new version). With
    ``worker_id`` the write is fenced: nothing changes unless job ``job_id`` is still
    claimed by that worker. The result: whether the prediction changed."""
    params = finish_params(prediction_id, **values)

    def write(conn: sa.Connection) -> bool:
        if job_id is not None and worker_id is not None:
            # the same two statements, our claim first: a lost claim changes nothing
            own = {"p_job": job_id, "p_worker": worker_id}
            if not conn.execute(_DELETE_OWN_JOB, own).rowcount:
                return False
            return _finish(conn, params, then)
        changed = _finish(conn, params, then)
        if job_id is not None:
            conn.execute(_DELETE_JOB, {"p_job": job_id})
        return changed

    return write


def _finish(conn: sa.Connection, params: dict[str, Any], then: Write | None) -> bool:
    changed = bool(conn.execute(FINISH, params).rowcount)
    if changed and then is not None:
        then(conn)
    return changed


def complete(job_id: int, worker_id: str | None = None) -> Write:
    """The job's run ended (whatever its outcome): forget it; with ``worker_id``, only
    while that worker holds it (fenced, as :func:`record_end`)."""

    def write(conn: sa.Connection) -> None:
        if worker_id is None:
            conn.execute(_DELETE_JOB, {"p_job": job_id})
        else:
            conn.execute(_DELETE_OWN_JOB, {"p_job": job_id, "p_worker": worker_id})

    return write


def requeue(job_id: int, worker_id: str | None = None) -> Write:
    """Put a claimed job back at its place in the queue; with ``worker_id``, only while
    that worker holds it (an agent found lost meanwhile may have lost it to another)."""

    def write(conn: sa.Connection) -> None:
        if worker_id is None:
            conn.execute(_RELEASE_JOB, {"p_job": job_id})
        else:
            conn.execute(_RELEASE_OWN_JOB, {"p_job": job_id, "p_worker": worker_id})

    return write
