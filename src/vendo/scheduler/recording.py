"""Recording a run: runner events become bus events and store writes.

Events go on the bus at once; their store writes join the writer's next batch
(:mod:`vendo.store.batch`). Two rules keep that cheap:

- *the start delay*: a run that ends within :data:`START_DELAY` goes from ``starting`` to
  its terminal state in one write; a longer one is marked ``processing`` after it;
- *coalescing*: the log text (iterator outputs) that arrives until a batch starts goes
  out in one write.

A prediction with a webhook publishes each event only after its write (the relay reads
the row). A deferred run (:mod:`vendo.scheduler.sync`) records nothing until it ends.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from vendo.queue import Claimed, claims, insert_prediction, new_job
from vendo.runner.protocol import FILE_KEY, RunnerEvent, has_files
from vendo.scheduler.context import SchedulerContext
from vendo.scheduler.events import DROP, InOrder
from vendo.scheduler.run import Run, RunPhase
from vendo.status import PredictionStatus, final_metrics, terminal_events
from vendo.store import prediction_writes as writes
from vendo.store import utcnow
from vendo.store.batch import Write
from vendo.store.tables import PredictionRow

__all__ = ["START_DELAY", "Recorder"]

log = logging.getLogger(__name__)

# A run that ends within this many seconds goes from ``starting`` to its terminal state
# in one write; a longer one is marked ``processing`` after it.
START_DELAY = 0.005


class Recorder:
    """Turns one scheduler's runner events into bus events and batched writes."""

    def __init__(self, ctx: SchedulerContext) -> None:
        self.ctx = ctx

    # --- while it runs ----------------------------------------------------------------

    def events(self, run: Run) -> InOrder:
        """Where the runner's events for ``run`` go (its ``on_event``): handled in
        order, straight from the runner's socket (on the loop), while output files are
        stored."""
        handle = functools.partial(self._apply, run)
        convert = functools.partial(self._stored_output, run)
        return InOrder(handle, convert, self.ctx.spawn, run.prediction_id)

    def _apply(self, run: Run, message: RunnerEvent) -> None:
        kind = message.get("type")
        if kind == "started":
            self._started(run)
        elif kind == "log":
            self._log(run, message.get("data") or "")
        elif kind == "output":
            self._add_output(run, message.get("value"))

    def _started(self, run: Run) -> None:
        run.started_at = utcnow()
        run.advance(RunPhase.STARTED)
        if run.unwritten is not None:
            return  # no one can listen yet, nothing to write: see sync.persist()
        if run.ordered:
            self.write_started(run)
        else:
            self.ctx.bus.publish(run.prediction_id, "start", {})
            # A quick run goes from starting to its end in one write; a longer one
            # shows ``processing`` (to GET, and to a restart) within a few ms.
            loop = asyncio.get_running_loop()
            run.start_timer = loop.call_later(START_DELAY, self.write_started, run)

    def write_started(self, run: Run) -> None:
        run.start_timer = None
        if run.phase is not RunPhase.STARTED or run.started_at is None or self.ctx.abandoned:
            return
        run.advance(RunPhase.PROCESSING)
        pid = run.prediction_id
        fence = self.ctx.fence(run)
        future = self.ctx.writer.add(writes.mark_started(pid, run.started_at, fence))

        def written(f: asyncio.Future[Any]) -> None:
            if f.cancelled():
                return
            if f.exception() is not None:
                log.error("prediction %s: could not record its start: %s", pid, f.exception())
            elif run.ordered and f.result():
                self.ctx.bus.publish(pid, "start", {})

        future.add_done_callback(written)

    def _log(self, run: Run, text: str) -> None:
        if not text:
            return
        run.logs.append(text)
        run.all_logs.append(text)
        if run.unwritten is not None:
            return
        if not run.ordered:
            self.ctx.bus.publish(run.prediction_id, "logs", text)
        if run.logs_write is None:
            # one write for all the text that arrives until its batch starts
            sent: list[str] = []
            run.logs_write = self.ctx.writer.add_lazy(functools.partial(self._logs, run, sent))
            run.logs_write.add_done_callback(functools.partial(self._written, run, "logs", sent))

    def _logs(self, run: Run, sent: list[str]) -> Write | None:
        run.logs_write = None
        text, run.logs = "".join(run.logs), []
        if not text or self.ctx.abandoned:
            return None
        sent.append(text)
        return writes.append_logs(run.prediction_id, text, self.ctx.fence(run))

    def _written(self, run: Run, event: str, sent: list[Any], future: asyncio.Future[Any]) -> None:
        pid = run.prediction_id
        if future.cancelled():
            return
        if future.exception() is not None:
            log.error("prediction %s: could not record %s: %s", pid, event, future.exception())
        if run.ordered:
            for item in sent:
                self.ctx.bus.publish(pid, event, item)

    def _add_output(self, run: Run, value: Any) -> None:
        run.outputs.append(value)
        if run.unwritten is not None:
            return
        if not run.ordered:
            self.ctx.bus.publish(run.prediction_id, "output", value)
        if run.outputs_write is None:
            sent: list[Any] = []
            future = self.ctx.writer.add_lazy(functools.partial(self._outputs, run, sent))
            run.outputs_write = future
            future.add_done_callback(functools.partial(self._written, run, "output", sent))

    def _outputs(self, run: Run, sent: list[Any]) -> Write | None:
        run.outputs_write = None
        new = run.outputs[run.outputs_written :]
        if not new or self.ctx.abandoned:
            return None
        run.outputs_written = len(run.outputs)
        sent.extend(new)
        return writes.set_output(run.prediction_id, list(run.outputs), self.ctx.fence(run))

    async def _stored_output(self, run: Run, value: Any) -> Any:
        """An iterator item's files, stored; a file that cannot be is logged and the
        item dropped (the run goes on)."""
        try:
            return await self.store_files(run, value)
        except Exception:
            log.exception("prediction %s: could not store an output file", run.prediction_id)
            return DROP

    async def store_files(self, run: Run, value: Any) -> Any:
        """Hand output files (``{"__vendo_file__": path}`` markers) to file storage; the
        store keeps the references storage returns."""
        if not has_files(value):
            return value
        owner_id = run.claimed.owner_id
        storage = self.ctx.storage
        if storage is None:
            # no storage (tests of the pool alone): keep the local path as a file URL
            return _replace_files(value, lambda path: Path(path).as_uri())
        return await self.ctx.blocking(storage.encode_outputs, run.prediction_id, owner_id, value)

    # --- the end ----------------------------------------------------------------------

    async def record_end(self, run: Run, end: dict[str, Any]) -> bool:
        """Write a run's terminal columns (``end``: see :meth:`RunLifecycle.end`)
        and delete its job, in the writer's next batch, while the job is still ours
        (fenced). Whether the prediction changed (False: something else had ended it, or
        our claim was recovered as lost)."""
        if run.written is not None:  # persisted mid-run: its job id comes with it
            await asyncio.shield(run.written)
        changed: bool = await self.ctx.writer.add(
            claims.record_end(
                run.prediction_id,
                status=end["status"],
                at=end["completed_at"],
                error=end["error"],
                metrics=end["metrics"],
                output=end["output"],
                cancel_reason=end["cancel_reason"],
                # kept when ``processing`` was written; a run quicker than the start
                # delay never had it written
                started_at=run.started_at,
                job_id=run.job.id or None,
                worker_id=self.ctx.queue.worker_id,
                then=end.get("then"),
            )
        )
        return changed

    def publish_end(self, prediction_id: str, status: str, error: str | None) -> None:
        """The bus events of a terminal state (:func:`vendo.status.terminal_events`)."""
        for name, data in terminal_events(status, error):
            self.ctx.bus.publish(prediction_id, name, data)

    def publish_row_end(self, row: PredictionRow) -> None:
        self.publish_end(row.id, row.status, row.error)

    async def record_failure(self, claimed: Claimed, error: str, *, job_id: int | None) -> None:
        """End a prediction ``failed`` through the same write as any run's end (the
        scheduler's own error, a version that cannot run), deleting ``job_id`` with it
        while it is ours (fenced), and publish that end unless something else had ended
        it first."""
        pid, at = claimed.job.prediction_id, utcnow()
        metrics = final_metrics(
            claimed.metrics, None, created_at=claimed.created_at, started_at=None, at=at
        )
        changed = await self.ctx.writer.add(
            claims.record_end(
                pid,
                status=PredictionStatus.FAILED,
                at=at,
                error=error,
                metrics=metrics,
                output=None,
                started_at=claimed.started_at,
                job_id=job_id,
                worker_id=self.ctx.queue.worker_id,
            )
        )
        if changed:
            self.publish_end(pid, PredictionStatus.FAILED, error)

    # --- a deferred run ---------------------------------------------------------------

    def insert_unwritten(self, run: Run, end: dict[str, Any] | None = None) -> None:
        """Insert a deferred run's prediction: with ``end`` (its terminal columns) as
        finished, else as it is now, with its job (claimed by us, or queued again when
        the run was requeued). ``run.written`` is the insert on its way."""
        values, run.unwritten = run.unwritten, None
        assert values is not None
        if self.ctx.abandoned:
            return  # found lost: it is dropped unwritten, like every run here
        pid = run.prediction_id
        job: dict[str, Any] | None = None
        if end is not None:
            values.update(end, run_input=None)
        else:
            values.update(self._so_far(run))
            claimed_by = None if run.phase is RunPhase.REQUEUED else self.ctx.queue.worker_id
            job = new_job(run.job.kind, pid, run.job.version_id, claimed_by, pool=run.job.pool)
        count_model, run.count_model = run.count_model, None
        future = self.ctx.writer.add(
            functools.partial(insert_prediction, values=values, job=job, count_model=count_model),
            # Alone, its waiter answers as soon as it is written; with other runs about,
            # it had better share their next batch (one commit for many).
            eager=end is not None and len(self.ctx.runs) <= 1,
        )
        run.written = future

        def inserted(f: asyncio.Future[Any]) -> None:
            if f.cancelled() or f.exception() is not None:
                log.error("prediction %s: could not be recorded: %s", pid, f.exception())
            elif job is not None:
                run.job = replace(run.job, id=f.result())

        future.add_done_callback(inserted)

    @staticmethod
    def _so_far(run: Run) -> dict[str, Any]:
        """The columns of a run in progress; what they carry needs no write of its own."""
        started = run.started_at is not None
        values: dict[str, Any] = {
            "status": PredictionStatus.PROCESSING if started else PredictionStatus.STARTING,
            "started_at": run.started_at,
            "logs": "".join(run.all_logs),
        }
        if run.outputs:
            values["output"] = list(run.outputs)
        run.logs, run.outputs_written = [], len(run.outputs)
        if started:
            run.advance(RunPhase.PROCESSING)
        return values


def _replace_files(value: Any, fn: Callable[[str], Any]) -> Any:
    if isinstance(value, dict):
        if set(value) == {FILE_KEY}:
            return fn(str(value[FILE_KEY]))
        return {k: _replace_files(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_files(v, fn) for v in value]
    return value
