"""Group commit: many small writes, one transaction.

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

The writes themselves are functions of a Core connection, made by
:mod:`vendo.store.prediction_writes` (a prediction's start, logs, outputs and end) and
:mod:`vendo.queue.claims` (claiming, completing and releasing jobs).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from vendo.store.store import Store, WriterBusy

__all__ = ["CHECKPOINT_EVERY", "TRUNCATE_EVERY", "BatchWriter", "Write"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Batches committed on the loop between two WAL checkpoints: a passive one (copies,
# blocks no one) every CHECKPOINT_EVERY, and every TRUNCATE_EVERY a truncating one,
# which empties the WAL and, the copying mostly done already, holds writers back briefly.
# A checkpoint costs a thread hop and an fsync whatever it copies, and a page written by
# many batches is copied once, so rarer is cheaper per batch; 100 lone predictions write
# about 700 WAL pages, under SQLite's own default of a checkpoint per 1,000.
CHECKPOINT_EVERY = 100
TRUNCATE_EVERY = 1000

# A write: a function of the batch's Core connection (no ORM session: it costs more
# than the statements). ``prepare`` (on the event loop, when the batch is taken) may
# return None to drop it, e.g. a log write whose text went out with an earlier batch.
Write = Callable[[sa.Connection], Any]


@dataclass
class _Pending:
    prepare: Callable[[], Write | None]
    future: asyncio.Future[Any]


class BatchWriter:
    """Applies added writes in order, all that are pending in one transaction."""

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

    def add(self, write: Write, *, eager: bool = False) -> asyncio.Future[Any]:
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
        return self.add_lazy(lambda: write)

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            # One thread: the writes of one prediction must stay in order, and SQLite has
            # one writer anyway.
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="vendo-batch-writer")
        return self._executor

    def _nowait(self) -> bool:
        return self.store.writes_nowait and (self._truncating is None or self._truncating.done())

    def _idle(self) -> bool:
        return self._flusher is None or self._flusher.done()

    def add_lazy(self, prepare: Callable[[], Write | None]) -> asyncio.Future[Any]:
        """Like :meth:`add`, with the write made by ``prepare()`` when its batch starts,
        so that data arriving until then (log text, outputs) goes out with it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Pending(prepare, future))
        if self._idle():
            self._flusher = loop.create_task(self._flush(), name="vendo-batch-writes")
        return future

    async def drain(self) -> None:
        """Wait until every write added so far is committed."""
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
            log.debug("batch failed on the loop; retrying on the thread", exc_info=True)
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
                log.debug("batched write failed", exc_info=True)
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
