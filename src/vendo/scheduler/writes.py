"""Group commit for the scheduler's database writes.

Every prediction the scheduler runs needs a few small writes: claim its job, mark it
``processing``, append logs and outputs, record the terminal state and delete the job.
One transaction (and one thread hop) each would cap the platform at a few hundred
predictions per second on SQLite, whose single writer serializes them all. Instead the
scheduler hands each write to a :class:`BatchWriter` as a function of a session; the
writer applies everything pending in one transaction on its own thread, and the next
batch collects what arrived meanwhile. Under load a batch carries the writes of many
predictions; an idle server still commits a lone write at once (no timer).

The writes themselves (:func:`claim`, :func:`mark_started`, :func:`finish`, ...) are
plain SQL on the store's tables. They keep the store's rules: a terminal prediction is
never changed again, and a job is claimed by one scheduler only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vendo.queue import Job
from vendo.store import PROCESSING, STARTING, Store, utcnow
from vendo.store.tables import JobRow, PredictionRow

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

# A write: a function of the batch's session. ``prepare`` (on the event loop, when the
# batch is taken) may return None to drop it, e.g. a log write whose text went out with
# an earlier batch.
Write = Callable[[Session], Any]


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

    def submit(self, write: Write) -> asyncio.Future[Any]:
        """Queue ``write``; the future resolves to its result once committed (or to its
        error). Writes run in submission order."""
        return self.submit_lazy(lambda: write)

    def submit_lazy(self, prepare: Callable[[], Write | None]) -> asyncio.Future[Any]:
        """Like :meth:`submit`, with the write made by ``prepare()`` when its batch starts,
        so that data arriving until then (log text, outputs) goes out with it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Pending(prepare, future))
        if self._flusher is None or self._flusher.done():
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
        if self._executor is None:
            # One thread: the writes of one prediction must stay in order, and SQLite has
            # one writer anyway.
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="vendo-scheduler-writer")
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
                results = await loop.run_in_executor(self._executor, self._apply, writes)
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
            with self.store.write() as session:
                for write in writes:
                    results.append((True, write(session) if write is not None else None))
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
                with self.store.write() as session:
                    results.append((True, write(session)))
            except Exception as exc:
                results.append((False, exc))
        return results


# --- the writes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A claimed job with what the scheduler needs of its prediction (one read less)."""

    job: Job
    status: str | None  # None: the prediction is gone
    run_input: dict[str, Any] | None = None
    deadline: datetime | None = None
    owner_id: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    metrics: dict[str, Any] | None = None
    webhook: str | None = None


def claim(version_id: str, limit: int, worker_id: str) -> Write:
    """Claim up to ``limit`` queued jobs of a version, oldest first (like
    :meth:`vendo.queue.Queue.claim`), and read their predictions in the same
    transaction."""

    def write(s: Session) -> list[Claimed]:
        if limit <= 0:
            return []
        ids = list(
            s.scalars(
                sa.select(JobRow.id)
                .where(JobRow.version_id == version_id, JobRow.state == "queued")
                .order_by(JobRow.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            return []
        rows = s.execute(
            sa.update(JobRow)
            .where(JobRow.id.in_(ids), JobRow.state == "queued")
            .values(state="claimed", claimed_at=utcnow(), claimed_by=worker_id)
            .returning(
                JobRow.id, JobRow.kind, JobRow.prediction_id, JobRow.version_id, JobRow.created_at
            )
        ).all()
        jobs = sorted((Job(r[0], r[1], r[2], r[3], r[4]) for r in rows), key=lambda j: j.id)
        found = {
            r.id: r
            for r in s.execute(
                sa.select(
                    PredictionRow.id,
                    PredictionRow.status,
                    PredictionRow.run_input,
                    PredictionRow.deadline,
                    PredictionRow.owner_id,
                    PredictionRow.created_at,
                    PredictionRow.started_at,
                    PredictionRow.metrics,
                    PredictionRow.webhook,
                ).where(PredictionRow.id.in_([j.prediction_id for j in jobs]))
            )
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

    return write


def mark_started(prediction_id: str, at: datetime) -> Write:
    """``starting`` -> ``processing``; the result says whether it was still starting."""

    def write(s: Session) -> bool:
        result = s.execute(
            sa.update(PredictionRow)
            .where(PredictionRow.id == prediction_id, PredictionRow.status == STARTING)
            .values(status=PROCESSING, started_at=at)
        )
        return bool(getattr(result, "rowcount", 0))

    return write


def append_logs(prediction_id: str, text: str) -> Write:
    def write(s: Session) -> None:
        s.execute(
            sa.update(PredictionRow)
            .where(PredictionRow.id == prediction_id)
            .values(logs=PredictionRow.logs + text)
        )

    return write


def set_output(prediction_id: str, output: list[Any]) -> Write:
    """The iterator output so far (the whole list: one write per batch, not per item)."""

    def write(s: Session) -> None:
        s.execute(
            sa.update(PredictionRow)
            .where(PredictionRow.id == prediction_id, PredictionRow.status.in_(UNFINISHED))
            .values(output=output)
        )

    return write


def finish(
    prediction_id: str,
    values: dict[str, Any],
    *,
    job_id: int | None = None,
    started_at: datetime | None = None,
) -> Write:
    """Record the terminal state (``values``: status, completed_at, error, metrics,
    output, ...) unless the prediction is terminal already, and delete its job: one
    transaction for what used to be ``Store.finish`` + ``Queue.complete``.

    ``started_at``: give it when the run started but ``processing`` was never written
    (a run quicker than the start delay). The result: whether the prediction changed.
    """

    def write(s: Session) -> bool:
        extra: dict[str, Any] = {"run_input": sa.null()}
        if started_at is not None:
            extra["started_at"] = started_at
        result = s.execute(
            sa.update(PredictionRow)
            .where(PredictionRow.id == prediction_id, PredictionRow.status.in_(UNFINISHED))
            .values(**values, **extra)
        )
        if job_id is not None:
            s.execute(sa.delete(JobRow).where(JobRow.id == job_id))
        return bool(getattr(result, "rowcount", 0))

    return write


def complete(job_id: int) -> Write:
    def write(s: Session) -> None:
        s.execute(sa.delete(JobRow).where(JobRow.id == job_id))

    return write


def release(job_id: int) -> Write:
    def write(s: Session) -> None:
        s.execute(
            sa.update(JobRow)
            .where(JobRow.id == job_id)
            .values(state="queued", claimed_at=None, claimed_by=None)
        )

    return write
