"""The durable job queue, kept in the store's ``jobs`` table.

A job is inserted in the same transaction as its prediction (:meth:`Queue.submit`), so
an accepted prediction is never lost and never queued twice. Schedulers claim jobs
oldest first: a ``SELECT`` of the oldest ids, which on PostgreSQL takes
``FOR UPDATE SKIP LOCKED`` so that concurrent claimers (several agents) never block on or
double-claim a row, then ``UPDATE ... RETURNING`` in the same transaction. On SQLite
the store's single writer serializes claims.
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vendo.queue import claims
from vendo.queue.claims import Job
from vendo.status import pool_key
from vendo.store import CANCELED, FAILED, PROCESSING, STARTING, TERMINAL, Store, utcnow
from vendo.store.prepared import Prepared, insert_all_columns
from vendo.store.tables import (
    AgentRow,
    JobRow,
    ModelRow,
    PredictionRow,
    claimed,
    job_queued,
    unfinished,
)

__all__ = [
    "INTERRUPTED_ERROR",
    "LOST_ERROR",
    "Job",
    "Queue",
    "Recovery",
    "insert_prediction",
    "new_job",
    "prediction_values",
]

INTERRUPTED_ERROR = "interrupted: the server stopped while this prediction was running"
LOST_ERROR = "interrupted: the worker (agent or server) running this prediction stopped answering"


@dataclass
class Recovery:
    """What :meth:`Queue.recover` did at start-up."""

    requeued: list[str] = field(default_factory=list)  # were starting: will run
    failed: list[str] = field(default_factory=list)  # were processing: marked failed
    dropped: list[str] = field(default_factory=list)  # jobs of already finished predictions
    canceled: list[str] = field(default_factory=list)  # never started, their cancel asked
    # the claimer had no ``agents`` row (scaled mode): not heard of, rather than silent
    unregistered: bool = False


class Queue:
    """Enqueue, claim, complete and recover jobs. Blocking: call off the event loop."""

    def __init__(self, store: Store, worker_id: str | None = None) -> None:
        self.store = store
        self.worker_id = worker_id or f"{socket.gethostname()}:embedded"

    def enqueue(
        self,
        session: Session,
        prediction_id: str,
        version_id: str,
        kind: str = "predict",
        *,
        deployment: str | None = None,
    ) -> None:
        """Add a job inside the caller's write transaction (``store.write()``)."""
        session.add(
            JobRow(
                kind=kind,
                prediction_id=prediction_id,
                version_id=version_id,
                pool=pool_key(version_id, deployment, kind),
                state="queued",
                created_at=utcnow(),
            )
        )

    def submit(
        self, prediction: PredictionRow, kind: str = "predict", *, count_run: bool = False
    ) -> None:
        """Insert ``prediction`` and its job in one transaction. With ``count_run`` the
        model's ``run_count`` goes up in the same transaction: on SQLite every write
        transaction is a turn of the one writer, so one per prediction is the budget."""
        with self.store.transaction() as conn:
            self.submit_in(conn, prediction, kind, count_run=count_run)

    def submit_in(
        self,
        conn: sa.Connection,
        prediction: PredictionRow,
        kind: str = "predict",
        *,
        count_run: bool = False,
        claimed_by: str | None = None,
    ) -> int:
        """:meth:`submit` inside a caller's write transaction (a Core connection: the
        scheduler's group commit); returns the job id. With ``claimed_by`` the job is
        inserted already claimed by that worker (a scheduler that runs it at once: no
        claim round trip); :meth:`recover` treats it like any claimed job."""
        pool = pool_key(prediction.version_id, prediction.deployment, kind)
        job = new_job(kind, prediction.id, prediction.version_id, claimed_by, pool=pool)
        model_id = prediction.model_id if count_run else None
        job_id = insert_prediction(conn, prediction_values(prediction), job, model_id)
        assert job_id is not None
        return job_id

    def claim(self, pool: str, limit: int = 1) -> list[Job]:
        """Claim up to ``limit`` queued jobs of a pool (its key, see
        :func:`vendo.status.pool_key`), oldest first."""
        if limit <= 0:
            return []
        # Most claims find nothing (a scheduler claims again whenever a slot frees). A
        # read answers that without a write transaction, which on SQLite would wait for
        # and hold the one writer. A job committed after this read has its own notify,
        # which makes the scheduler claim again.
        queued = sa.select(JobRow.id).where(JobRow.pool == pool, job_queued())
        # in ix_jobs_claim's order: see job_queued
        queued = queued.order_by(JobRow.state, JobRow.id)
        with self.store.read() as s:
            waiting = s.scalar(queued.limit(1))
        if waiting is None:
            return []
        with self.store.transaction() as conn:
            return claims.claim_jobs(conn, pool, limit, self.worker_id)

    def complete(self, job_id: int) -> None:
        """The job's run ended (whatever its outcome): forget it."""
        with self.store.transaction() as conn:
            claims.complete(job_id)(conn)

    def requeue(self, job_id: int) -> None:
        """Put a claimed job back at its place in the queue (a runner could not take it)."""
        with self.store.transaction() as conn:
            claims.requeue(job_id)(conn)

    def cancel_queued(self, prediction_id: str, reason: str = "canceled") -> PredictionRow | None:
        """Cancel a prediction that no scheduler has claimed yet, atomically: its job is
        removed and it ends ``canceled`` in one transaction (no unfinished prediction is
        ever left without its job). Returns the finished row, or None when the job was
        already claimed (then the scheduler must cancel it) or is gone."""
        with self.store.write() as s:
            result = s.execute(
                sa.delete(JobRow).where(
                    JobRow.prediction_id == prediction_id, JobRow.state == "queued"
                )
            )
            if not getattr(result, "rowcount", 0):
                return None
            return self.store.predictions.finish(
                prediction_id, CANCELED, cancel_reason=reason, session=s
            )

    def pending_pools(self) -> list[str]:
        """Pools that have queued jobs, oldest job first (for a scheduler at start-up
        and its periodic look for jobs queued elsewhere). A skip scan of ``ix_jobs_claim``:
        one index probe per pool with jobs, however many are queued."""
        with self.store.read() as s:
            rows = s.execute(_PENDING_POOLS).all()
        return [r[0] for r in sorted(rows, key=lambda r: int(r[1]))]

    def depth(self, pool: str, at_most: int | None = None) -> int:
        """Queued (unclaimed) jobs of a pool; with ``at_most``, counted no further (the
        autoscaler needs no more than what its maximum instances would take)."""
        queued = sa.select(JobRow.id).where(JobRow.pool == pool, job_queued())
        if at_most is not None:
            queued = queued.limit(at_most)
        with self.store.read() as s:
            count = s.scalar(sa.select(sa.func.count()).select_from(queued.subquery()))
        return int(count or 0)

    def cancel_pool(self, pool: str, reason: str = "canceled") -> list[PredictionRow]:
        """Cancel every queued job of a pool (a disabled deployment), each as
        :meth:`cancel_queued` does; the finished rows."""
        with self.store.read() as s:
            ids = list(
                s.scalars(sa.select(JobRow.prediction_id).where(JobRow.pool == pool, job_queued()))
            )
        ended = (self.cancel_queued(pid, reason) for pid in ids)
        return [row for row in ended if row is not None]

    def recover(self, worker_id: str | None = None) -> Recovery:
        """Apply the restart policy (docs/design/platform.md) to jobs left claimed by a
        stopped server: ``worker_id`` None means every claimed job (the embedded server
        is the only claimer). A claimed job whose prediction never started goes back to
        the queue; one whose prediction was ``processing`` fails with
        :data:`INTERRUPTED_ERROR`, because models are not assumed idempotent.

        Only claimed jobs are read (``ix_jobs_claimed``): queued ones stay untouched in
        the database, however many, and the claim path deals with them (a job of a
        finished or missing prediction is dropped when claimed; one of a prediction
        already ``processing`` fails as interrupted)."""
        with self.store.write() as s:
            report = _recover_claims(s, worker_id)
            if worker_id is None:
                # A processing prediction without a job: a restart stopped between the
                # two steps of an earlier recovery (the job deleted, the failure not yet
                # written). Every other path ends a prediction before or as it removes
                # its job, so a *starting* one always has its job.
                orphans = s.scalars(
                    sa.select(PredictionRow.id).where(
                        unfinished(),
                        PredictionRow.status == PROCESSING,
                        ~sa.exists().where(JobRow.prediction_id == PredictionRow.id),
                    )
                )
                report.failed.extend(o for o in orphans if o not in report.failed)
        for prediction_id in report.failed:
            self.store.predictions.finish(prediction_id, FAILED, error=INTERRUPTED_ERROR)
        for prediction_id in report.canceled:
            self.store.predictions.finish(prediction_id, CANCELED, cancel_reason="canceled")
        return report

    def recover_lost(self, timeout: float) -> dict[str, Recovery]:
        """Recover the jobs of agents whose last heartbeat is more than ``timeout``
        seconds old (scaled mode), by the restart policy of :meth:`recover`: unstarted
        ones back to the queue, running ones failed with :data:`LOST_ERROR`. Each agent
        is recovered by one process only, in one transaction with its row's removal.

        On PostgreSQL the claims of workers with no ``agents`` row at all are recovered
        the same way (:meth:`recover_orphaned`). Claims under this queue's own
        ``worker_id`` are never recovered here: a claimer whose row is gone learns it
        from its heartbeat; in a process that only watches, that id (``<host>:embedded``)
        is the one an in-process scheduler without a name of its own claims under."""
        cutoff = utcnow() - timedelta(seconds=timeout)
        done: dict[str, Recovery] = {}
        for name in self.store.agents.lost(cutoff):
            if name == self.worker_id:
                continue  # our own heartbeat is late (a stalled loop): not lost
            with self.store.write() as s:
                if not self.store.agents.forget(s, name, cutoff):
                    continue  # it came back, or another process recovered it
                report = done[name] = _recover_claims(s, name)
                _finish_lost(self.store, s, report)
        if self.store.dialect != "sqlite":
            done.update(self.recover_orphaned())
        return done

    def recover_orphaned(self) -> dict[str, Recovery]:
        """Recover, as :meth:`recover_lost` does, the claims of workers that have no
        ``agents`` row (PostgreSQL, where every claimer registers before it claims):
        a server of an earlier version that claimed unregistered, a worker that
        stopped with claims left or restarted under another name, or one that claimed
        again after it was found lost. This queue's own claims are left alone.

        Each claim is recovered once however many processes look: the jobs are locked
        (``FOR UPDATE SKIP LOCKED``: another process recovering them is skipped, not
        waited for) and their claimers looked up again under the lock."""
        # Nearly every look finds nothing: a read (the claimed jobs only, by
        # ix_jobs_claimed) answers that without a write transaction.
        with self.store.read() as s:
            if s.scalar(_orphaned_claims(self.worker_id).limit(1)) is None:
                return {}
        done: dict[str, Recovery] = {}
        with self.store.write() as s:
            locked = _orphaned_claims(self.worker_id, JobRow, PredictionRow.status)
            rows = s.execute(locked.with_for_update(of=JobRow, skip_locked=True)).all()
            # The lock's statement saw the agents as they were when it began: a worker
            # that registered and claimed since must not be taken for an orphan.
            names = {job.claimed_by for job, _ in rows}
            alive = set(s.scalars(sa.select(AgentRow.name).where(AgentRow.name.in_(names))))
            for job, status in rows:
                if job.claimed_by in alive:
                    continue
                report = done.setdefault(job.claimed_by, Recovery(unregistered=True))
                _apply_policy(s, job, status, report)
            for report in done.values():
                _finish_lost(self.store, s, report)
        return done

    def request_cancel(self, prediction_id: str, reason: str = "canceled") -> bool:
        """Mark a claimed job's cancel in the database, for the process running it to
        find (:meth:`cancels_requested`) when the relayed cancel does not reach it."""
        with self.store.write() as s:
            result = s.execute(
                sa.update(JobRow)
                .where(JobRow.prediction_id == prediction_id, claimed())
                .values(cancel_requested=reason)
            )
            return bool(getattr(result, "rowcount", 0))

    def cancels_requested(self) -> list[tuple[str, str]]:
        """``(prediction_id, reason)`` of this worker's claimed jobs whose cancel was
        asked (``ix_jobs_claimed``: as many rows as this worker runs)."""
        stmt = sa.select(JobRow.prediction_id, JobRow.cancel_requested).where(
            claimed(), JobRow.claimed_by == self.worker_id, JobRow.cancel_requested.is_not(None)
        )
        with self.store.read() as s:
            return [(str(pid), str(reason)) for pid, reason in s.execute(stmt).all()]


def _recover_claims(s: Session, worker_id: str | None) -> Recovery:
    """Inside ``s``: the claimed jobs (of ``worker_id``, or all) by the restart policy;
    the failed ones are for the caller to finish."""
    report = Recovery()
    stmt = (
        sa.select(JobRow, PredictionRow.status)
        .join(PredictionRow, PredictionRow.id == JobRow.prediction_id, isouter=True)
        .where(claimed())
    )
    if worker_id is not None:
        stmt = stmt.where(JobRow.claimed_by == worker_id)
    for job, status in s.execute(stmt).all():
        _apply_policy(s, job, status, report)
    return report


def _apply_policy(s: Session, job: JobRow, status: str | None, report: Recovery) -> None:
    """Inside ``s``: one claimed job (its prediction's ``status``) by the restart
    policy, noted in ``report``."""
    if status is None or status in TERMINAL:
        s.delete(job)
        report.dropped.append(job.prediction_id)
    elif status == STARTING and job.cancel_requested is not None:
        s.delete(job)
        report.canceled.append(job.prediction_id)
    elif status == STARTING:
        job.state, job.claimed_at, job.claimed_by = "queued", None, None
        report.requeued.append(job.prediction_id)
    elif status == PROCESSING:
        s.delete(job)
        report.failed.append(job.prediction_id)


def _finish_lost(store: Store, s: Session, report: Recovery) -> None:
    """Inside ``s``: end the predictions a lost worker's recovery failed or canceled."""
    for prediction_id in report.failed:
        store.predictions.finish(prediction_id, FAILED, error=LOST_ERROR, session=s)
    for prediction_id in report.canceled:
        store.predictions.finish(prediction_id, CANCELED, cancel_reason="canceled", session=s)


def _orphaned_claims(own: str, *columns: Any) -> sa.Select[Any]:
    """Claimed jobs (``columns``, by default their ids) whose claimer has no ``agents``
    row, other than ``own``'s: a scan of ix_jobs_claimed (as many rows as jobs run)."""
    stmt = (
        sa.select(*(columns or (JobRow.id,)))
        .join(PredictionRow, PredictionRow.id == JobRow.prediction_id, isouter=True)
        .where(claimed(), JobRow.claimed_by != own)
        .where(~sa.exists().where(AgentRow.name == JobRow.claimed_by))
        .order_by(JobRow.id)
    )
    return stmt


# Distinct pools of the jobs table by a recursive skip scan of ix_jobs_claim (each
# step seeks the next pool), with the oldest queued job of each: cost per pool with
# jobs, not per job. The range on state is job_queued's (keeps PostgreSQL on the
# index).
_PENDING_POOLS = sa.text(
    """
    WITH RECURSIVE v(pool) AS (
        SELECT (SELECT min(j.pool) FROM jobs j)
        UNION ALL
        SELECT (
            SELECT j.pool FROM jobs j
            WHERE j.pool > v.pool ORDER BY j.pool LIMIT 1
        )
        FROM v WHERE v.pool IS NOT NULL
    )
    SELECT pool, first_id FROM (
        SELECT v.pool AS pool, (
            SELECT j.id FROM jobs j
            WHERE j.pool = v.pool AND j.state BETWEEN 'queued' AND 'queued'
            ORDER BY j.state, j.id LIMIT 1
        ) AS first_id
        FROM v WHERE v.pool IS NOT NULL
    ) AS pending
    WHERE first_id IS NOT NULL
    """
)


@functools.cache
def _submit_statements() -> tuple[Prepared, sa.Insert, Prepared]:
    predictions = cast(sa.Table, PredictionRow.__table__)
    jobs = cast(sa.Table, JobRow.__table__)
    models = cast(sa.Table, ModelRow.__table__)
    count = (
        sa.update(models)
        .where(models.c.id == sa.bindparam("p_model", type_=sa.Integer))
        .values(run_count=models.c.run_count + 1)
    )
    return insert_all_columns(predictions), sa.insert(jobs), Prepared(count)


@functools.cache
def _prediction_columns() -> dict[str, str]:
    """Attribute name -> column name of every column of the predictions table."""
    mapper = sa.inspect(PredictionRow)
    return {prop.key: prop.columns[0].key for prop in mapper.column_attrs}


def prediction_values(prediction: PredictionRow) -> dict[str, Any]:
    """The column values set on a new (not yet added) row, by column name; the others
    get the table's defaults, as an ORM insert would give them."""
    values = prediction.__dict__  # what sa.inspect(prediction).dict is, without inspect()
    columns = _prediction_columns().items()
    return {column: values[attr] for attr, column in columns if attr in values}


def new_job(
    kind: str,
    prediction_id: str,
    version_id: str,
    claimed_by: str | None = None,
    *,
    pool: str | None = None,
) -> dict[str, Any]:
    """A job row's values: queued, or already claimed by ``claimed_by``; in the queue of
    ``pool`` (a key of :func:`vendo.status.pool_key`), by default the version's."""
    job: dict[str, Any] = {
        "kind": kind,
        "prediction_id": prediction_id,
        "version_id": version_id,
        "pool": pool or pool_key(version_id),
        "state": "queued",
        "created_at": utcnow(),
    }
    if claimed_by is not None:
        job.update(state="claimed", claimed_at=job["created_at"], claimed_by=claimed_by)
    return job


def insert_prediction(
    conn: sa.Connection,
    values: dict[str, Any],
    job: dict[str, Any] | None = None,
    count_model: int | None = None,
) -> int | None:
    """Insert a prediction (``values`` by column name, as :func:`prediction_values`
    gives them), its job (from :func:`new_job`) unless None, and count a run of model
    ``count_model`` unless None. Returns the job's id. The prediction and the count go
    straight to the driver (:mod:`vendo.store.prepared`): this is the one write every
    prediction makes."""
    insert, insert_job, count = _submit_statements()
    insert.execute(conn, [values])
    job_id = None
    if job is not None:
        key = conn.execute(insert_job, job).inserted_primary_key
        assert key is not None
        job_id = int(key[0])
    if count_model is not None:
        count.execute(conn, [{"p_model": count_model}])
    return job_id
