"""Group commit for the scheduler's database writes.

Every prediction the scheduler runs needs a few small writes: claim its job, mark it
``processing``, append logs and outputs, record the terminal state and delete the job.
One transaction (and one thread hop) each would cap the platform at a few hundred
predictions per second on SQLite, whose single writer serializes them all. Instead the
scheduler hands each write to a :class:`BatchWriter` as a function of a connection; the
writer applies everything pending in one transaction, and the next batch collects what
arrived meanwhile. Under load a batch carries the writes of many predictions; an idle
server still commits a lone write at once (no timer).

Where a batch runs depends on the database. PostgreSQL is across a network: the
batch runs on the writer's thread, and the loop goes on meanwhile. On SQLite a batch is
a few hundred microseconds of Python (SQLAlchemy) plus a commit that never fsyncs
(WAL, ``synchronous=NORMAL``); a thread would not run it any sooner, since it needs the
GIL, and handing it over and back costs more than the batch itself (measured: about
1.5 ms of CPU per prediction on a 2-vCPU VM). So on SQLite the batch runs on the loop,
through :meth:`~vendo.store.Store.transaction_nowait`, which never waits for a lock: when
another connection (an API route's write, another process) holds it, the batch goes to
the thread instead. WAL checkpoints, which do fsync, run on the thread now and then
(see :data:`CHECKPOINT_EVERY`).

The writes themselves (:func:`claim`, :func:`mark_started`, :func:`finish`, ...) are
plain SQL on the store's tables. They keep the store's rules: a terminal prediction is
never changed again, and a job is claimed by one scheduler only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar, cast

import sqlalchemy as sa

from vendo.queue import Job
from vendo.store import PROCESSING, STARTING, Store, WriterBusy, utcnow
from vendo.store.tables import JobRow, PredictionRow, UTCDateTime, job_queued

__all__ = [
    "BatchWriter",
    "Claimed",
    "Write",
    "claim",
    "complete",
    "finish",
    "mark_started",
    "release",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

UNFINISHED = (STARTING, PROCESSING)
# Batches committed on the loop between two WAL checkpoints: a passive one (copies,
# blocks no one) every CHECKPOINT_EVERY, and every TRUNCATE_EVERY a truncating one,
# which empties the WAL and, the copying mostly done already, holds writers back briefly.
CHECKPOINT_EVERY = 25
TRUNCATE_EVERY = 250

# A write: a function of the batch's Core connection (no ORM session: it costs more
# than the statements). ``prepare`` (on the event loop, when the batch is taken) may
# return None to drop it, e.g. a log write whose text went out with an earlier batch.
Write = Callable[[sa.Connection], Any]


@dataclass
class _Pending:
    prepare: Callable[[], Write | None]
    future: asyncio.Future[Any]


class BatchWriter:
    """Applies submitted writes in order, all that are pending in one transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.batches = 0  # introspection: transactions committed
        self.writes = 0
        self._since_checkpoint = 0
        self._since_truncate = 0
        # While a truncating checkpoint runs, batches go to the thread (behind it) instead
        # of failing to take the lock on the loop.
        self._truncating: asyncio.Future[None] | None = None

    def submit(self, write: Write, *, eager: bool = False) -> asyncio.Future[Any]:
        """Queue ``write``; the future resolves to its result once committed (or to its
        error). Writes run in submission order.

        ``eager``: when nothing is queued or being written and the database allows it
        (SQLite, lock free), commit it right here, alone, and return a future already
        resolved: a waiter then goes on without the loop turns a batch takes. For a
        write someone waits on (the end of a ``Prefer: wait`` prediction); under load
        the writer is busy and it joins the next batch like any other."""
        if eager and self._nowait() and not self._pending and self._idle():
            results = self._apply_nowait([write])
            if results is not None:
                future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                ok, value = results[0]
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
                return future
        return self.submit_lazy(lambda: write)

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            # One thread: the writes of one prediction must stay in order, and SQLite has
            # one writer anyway.
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="vendo-scheduler-writer")
        return self._executor

    def _nowait(self) -> bool:
        return self.store.writes_nowait and (self._truncating is None or self._truncating.done())

    def _idle(self) -> bool:
        return self._flusher is None or self._flusher.done()

    def submit_lazy(self, prepare: Callable[[], Write | None]) -> asyncio.Future[Any]:
        """Like :meth:`submit`, with the write made by ``prepare()`` when its batch starts,
        so that data arriving until then (log text, outputs) goes out with it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Pending(prepare, future))
        if self._idle():
            self._flusher = loop.create_task(self._flush(), name="vendo-scheduler-writes")
        return future

    async def drain(self) -> None:
        """Wait until every write submitted so far is committed."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def close(self) -> None:
        await self.drain()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            writes: list[Write | None] = []
            for item in batch:
                try:
                    writes.append(item.prepare())
                except Exception as exc:  # a bad write fails alone
                    writes.append(None)
                    if not item.future.done():
                        item.future.set_exception(exc)
            try:
                results = self._apply_nowait(writes) if self._nowait() else None
                if results is None:
                    results = await loop.run_in_executor(self._thread(), self._apply, writes)
            except BaseException as exc:
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(
                            exc if isinstance(exc, Exception) else RuntimeError("stopped")
                        )
                raise
            for item, (ok, value) in zip(batch, results, strict=True):
                if item.future.done():
                    continue
                if ok:
                    item.future.set_result(value)
                else:
                    item.future.set_exception(value)

    def _apply_nowait(self, writes: list[Write | None]) -> list[tuple[bool, Any]] | None:
        """All writes in one transaction, here and now (on the loop); None when that
        cannot be (the lock is taken, or a write failed: the transaction rolled back, and
        :meth:`_apply` on the thread sorts it out)."""
        if all(w is None for w in writes):
            return [(True, None)] * len(writes)
        try:
            with self.store.transaction_nowait() as conn:
                results = [(True, w(conn) if w is not None else None) for w in writes]
        except WriterBusy:
            return None
        except Exception:
            log.debug("scheduler batch failed on the loop; retrying on the thread", exc_info=True)
            return None
        self.batches += 1
        self.writes += sum(w is not None for w in writes)
        self._since_checkpoint += 1
        self._since_truncate += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY:
            self._since_checkpoint = 0
            truncate = self._since_truncate >= TRUNCATE_EVERY
            if truncate:
                self._since_truncate = 0
            future = asyncio.get_running_loop().run_in_executor(
                self._thread(), functools.partial(self.store.checkpoint, truncate=truncate)
            )
            future.add_done_callback(_log_checkpoint)
            if truncate:
                self._truncating = future
        return results

    def _apply(self, writes: list[Write | None]) -> list[tuple[bool, Any]]:
        """All writes in one transaction; if that fails, each in its own, so that one
        bad write (a row gone, a constraint) does not sink the others."""
        real = [w for w in writes if w is not None]
        self.batches += 1
        self.writes += len(real)
        if not real:
            return [(True, None)] * len(writes)
        try:
            results: list[tuple[bool, Any]] = []
            with self.store.transaction() as conn:
                for write in writes:
                    results.append((True, write(conn) if write is not None else None))
            return results
        except Exception:
            if len(real) == 1:
                log.debug("scheduler write failed", exc_info=True)
        results = []
        for write in writes:
            if write is None:
                results.append((True, None))
                continue
            try:
                with self.store.transaction() as conn:
                    results.append((True, write(conn)))
            except Exception as exc:
                results.append((False, exc))
        return results


def _log_checkpoint(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("WAL checkpoint failed: %s", future.exception())


# --- the writes ------------------------------------------------------------------------


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


# Core statements on the tables, built once: the ORM's bulk-update path and the
# statement cache keys of fresh statements cost more than the SQL itself here.
_jobs = cast(sa.Table, JobRow.__table__)
_preds = cast(sa.Table, PredictionRow.__table__)
_TIME = UTCDateTime()

# A version's queued jobs in ix_jobs_claim's order (the same order as by id, given
# the version): see job_queued for why so.
_QUEUED_IDS = (
    sa.select(_jobs.c.id)
    .where(_jobs.c.version_id == sa.bindparam("p_version"), job_queued())
    .order_by(_jobs.c.state, _jobs.c.id)
    .limit(sa.bindparam("p_limit", type_=sa.Integer))
)
_ANY_QUEUED = (
    sa.select(_jobs.c.id)
    .where(_jobs.c.version_id == sa.bindparam("p_version"), job_queued())
    .order_by(_jobs.c.state, _jobs.c.id)
    .limit(1)
)
_CLAIM_COLUMNS = (
    _jobs.c.id,
    _jobs.c.kind,
    _jobs.c.prediction_id,
    _jobs.c.version_id,
    _jobs.c.created_at,
)
# PostgreSQL may run a LIMITed sub-select of an UPDATE more than once and so claim more
# rows than asked for: there the ids are locked first (SKIP LOCKED: concurrent agents
# never wait on or double-claim a row), then updated. SQLite's one writer serializes
# claims, so one statement does.
_CLAIM_LOCK = _QUEUED_IDS.with_for_update(skip_locked=True)
_CLAIM_IDS = (
    _jobs.update()
    .where(_jobs.c.id.in_(sa.bindparam("p_ids", expanding=True)), _jobs.c.state == "queued")
    .values(
        state="claimed",
        claimed_at=sa.bindparam("p_at", type_=_TIME),
        claimed_by=sa.bindparam("p_worker"),
    )
    .returning(*_CLAIM_COLUMNS)
)
_CLAIM_OLDEST = (
    _jobs.update()
    .where(_jobs.c.id.in_(_QUEUED_IDS.scalar_subquery()), _jobs.c.state == "queued")
    .values(
        state="claimed",
        claimed_at=sa.bindparam("p_at", type_=_TIME),
        claimed_by=sa.bindparam("p_worker"),
    )
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
_MARK_STARTED = (
    _preds.update()
    .where(_preds.c.id == sa.bindparam("p_id"), _preds.c.status == STARTING)
    .values(status=PROCESSING, started_at=sa.bindparam("p_at", type_=_TIME))
)
_APPEND_LOGS = (
    _preds.update()
    .where(_preds.c.id == sa.bindparam("p_id"))
    .values(logs=_preds.c.logs + sa.bindparam("p_text", type_=sa.Text))
)
_SET_OUTPUT = (
    _preds.update()
    .where(_preds.c.id == sa.bindparam("p_id"), _preds.c.status.in_(UNFINISHED))
    .values(output=sa.bindparam("p_output", type_=_preds.c.output.type))
)
_FINISH = (
    _preds.update()
    .where(_preds.c.id == sa.bindparam("p_id"), _preds.c.status.in_(UNFINISHED))
    .values(
        status=sa.bindparam("p_status"),
        completed_at=sa.bindparam("p_at", type_=_TIME),
        error=sa.bindparam("p_error", type_=sa.Text),
        metrics=sa.bindparam("p_metrics", type_=_preds.c.metrics.type),
        output=sa.bindparam("p_output", type_=_preds.c.output.type),
        run_input=sa.null(),
        cancel_reason=sa.func.coalesce(
            sa.bindparam("p_cancel_reason", type_=sa.String(32)), _preds.c.cancel_reason
        ),
        # a run quicker than the start delay never had ``processing`` written
        started_at=sa.func.coalesce(_preds.c.started_at, sa.bindparam("p_started", type_=_TIME)),
    )
)
_DELETE_JOB = _jobs.delete().where(_jobs.c.id == sa.bindparam("p_job"))
_RELEASE_JOB = (
    _jobs.update()
    .where(_jobs.c.id == sa.bindparam("p_job"))
    .values(state="queued", claimed_at=sa.null(), claimed_by=sa.null())
)


def claim(version_id: str, limit: int, worker_id: str) -> Write:
    """Claim up to ``limit`` queued jobs of a version, oldest first (like
    :meth:`vendo.queue.Queue.claim`), and read their predictions in the same
    transaction. The result: ``(claimed, more)``, ``more`` telling whether jobs of the
    version are still queued behind them."""

    def write(conn: sa.Connection) -> tuple[list[Claimed], bool]:
        claimed = _claim(conn, version_id, limit, worker_id)
        more = False
        if len(claimed) >= limit:
            more = conn.execute(_ANY_QUEUED, {"p_version": version_id}).first() is not None
        return claimed, more

    return write


def _claim(conn: sa.Connection, version_id: str, limit: int, worker_id: str) -> list[Claimed]:
    if limit <= 0:
        return []
    at = utcnow()
    if conn.dialect.name == "sqlite":
        rows = conn.execute(
            _CLAIM_OLDEST,
            {"p_version": version_id, "p_limit": limit, "p_at": at, "p_worker": worker_id},
        ).all()
    else:
        ids = list(conn.execute(_CLAIM_LOCK, {"p_version": version_id, "p_limit": limit}).scalars())
        if not ids:
            return []
        rows = conn.execute(_CLAIM_IDS, {"p_ids": ids, "p_at": at, "p_worker": worker_id}).all()
    if not rows:
        return []
    # RETURNING promises no order.
    jobs = sorted((Job(r[0], r[1], r[2], r[3], r[4]) for r in rows), key=lambda j: j.id)
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


def mark_started(prediction_id: str, at: datetime) -> Write:
    """``starting`` -> ``processing``; the result says whether it was still starting."""

    def write(conn: sa.Connection) -> bool:
        result = conn.execute(_MARK_STARTED, {"p_id": prediction_id, "p_at": at})
        return bool(result.rowcount)

    return write


def append_logs(prediction_id: str, text: str) -> Write:
    def write(conn: sa.Connection) -> None:
        conn.execute(_APPEND_LOGS, {"p_id": prediction_id, "p_text": text})

    return write


def set_output(prediction_id: str, output: list[Any]) -> Write:
    """The iterator output so far (the whole list: one write per batch, not per item)."""

    def write(conn: sa.Connection) -> None:
        conn.execute(_SET_OUTPUT, {"p_id": prediction_id, "p_output": output})

    return write


def finish(
    prediction_id: str,
    *,
    status: str,
    at: datetime,
    error: str | None,
    metrics: dict[str, Any],
    output: Any,
    cancel_reason: str | None = None,
    started_at: datetime | None = None,
    job_id: int | None = None,
) -> Write:
    """Record the terminal state unless the prediction is terminal already, and delete
    its job: one transaction for what used to be ``Store.finish`` + ``Queue.complete``.

    ``started_at``: when the run started, if ``processing`` may never have been written
    (a run quicker than the start delay). The result: whether the prediction changed.
    """
    params = {
        "p_id": prediction_id,
        "p_status": status,
        "p_at": at,
        "p_error": error,
        "p_metrics": metrics,
        "p_output": output,
        "p_cancel_reason": cancel_reason,
        "p_started": started_at,
    }

    def write(conn: sa.Connection) -> bool:
        changed = bool(conn.execute(_FINISH, params).rowcount)
        if job_id is not None:
            conn.execute(_DELETE_JOB, {"p_job": job_id})
        return changed

    return write


def complete(job_id: int) -> Write:
    def write(conn: sa.Connection) -> None:
        conn.execute(_DELETE_JOB, {"p_job": job_id})

    return write


def release(job_id: int) -> Write:
    def write(conn: sa.Connection) -> None:
        conn.execute(_RELEASE_JOB, {"p_job": job_id})

    return write
