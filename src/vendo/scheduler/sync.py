"""The synchronous wait (``Prefer: wait``): run a prediction and answer with its end.

:meth:`SyncRuns.run_and_wait` is all a caller sees. Inside, a prediction that can start
at once (a warm runner with a free slot, nothing queued before it) and has no webhook
is *deferred*: it starts without being written, and is written once, as it ends, in
one insert; its waiter then answers from the outcome the scheduler remembers, without
reading the row back. Until then nothing is published on the bus either: no one else
knows its id. When the wait runs out first, :meth:`SyncRuns.persist` writes it as it
stands (queued or running, its logs and outputs so far) and it goes on like any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from vendo.files.storage import has_shared_inputs
from vendo.queue import prediction_values
from vendo.scheduler.claiming import Claimer, new_run
from vendo.scheduler.context import SchedulerContext
from vendo.scheduler.running import RunLifecycle
from vendo.store.tables import PredictionRow, set_transient

__all__ = ["SyncRuns"]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SyncRuns:
    """Runs whose caller waits for their end."""

    def __init__(self, ctx: SchedulerContext, lifecycle: RunLifecycle, claimer: Claimer) -> None:
        self.ctx = ctx
        self.lifecycle = lifecycle
        self.claimer = claimer

    async def run_and_wait(
        self,
        prediction: PredictionRow,
        wait: float,
        *,
        count_run: bool = False,
        before_queue: Callable[[], None] | None = None,
    ) -> PredictionRow | None:
        """Run ``prediction``, waiting up to ``wait`` seconds for its end. When it ended
        in time: ``prediction`` itself, updated with its end as written (no read back).
        Else None: it is durably recorded (read it), and goes on. ``before_queue`` is
        called before the prediction is queued where others may see its events (not for
        a deferred run that ends unseen)."""
        pid = prediction.id
        ended = self.start_deferred(prediction, count_run=count_run) if wait > 0 else None
        if ended is None:
            if before_queue is not None:
                before_queue()
            await self.claimer.schedule(prediction, count_run=count_run)
            if wait > 0:
                await self.ctx.bus.wait_done(pid, wait)
            return self._as_ended(prediction)
        # ``ended`` is this call's own: the timer may resolve it early, which spares the
        # loop turns of a wait with a timeout; the outcome tells which came first.
        timer = asyncio.get_running_loop().call_later(wait, _resolve, ended)
        try:
            await ended
        finally:
            timer.cancel()
        ended_row = self._as_ended(prediction)
        if ended_row is None:
            await self.persist(pid)
        return ended_row

    def _as_ended(self, prediction: PredictionRow) -> PredictionRow | None:
        outcome = self.ctx.outcomes.get(prediction.id)
        if outcome is None:
            return None
        set_transient(prediction, outcome)
        set_transient(prediction, {"run_input": None})
        return prediction

    def start_deferred(
        self, prediction: PredictionRow, *, count_run: bool = False
    ) -> asyncio.Future[None] | None:
        """Start ``prediction`` unwritten when it can start at once and has no webhook:
        the future resolves once it ended and was written (or was persisted); None when
        it cannot be deferred."""
        if prediction.webhook or has_shared_inputs(prediction.run_input):
            return None  # input files from the bucket: fetched by the claimed run
        pool = self.claimer.pool_with_room(prediction, "predict")
        if pool is None:
            return None
        pool.reserve()
        run = new_run(pool, prediction, 0, "predict")
        # unwritten before it is sent: its start (reported as it is sent) is not written
        run.unwritten = prediction_values(prediction)
        run.count_model = prediction.model_id if count_run else None
        run.ended = asyncio.get_running_loop().create_future()
        self.ctx.runs[prediction.id] = run
        self.ctx.deferred[prediction.id] = run
        # The child starts now, not a loop turn later, and works while we go on (its
        # events cannot arrive before this returns to the loop).
        runner = pool.ready()
        slot = runner.acquire_slot() if runner is not None else None
        sent = None
        if runner is not None and slot is not None:
            if self.lifecycle.past_deadline(run):
                slot.release()
            else:
                sent = self.lifecycle.send(run, runner, slot)
        self.ctx.spawn(self.lifecycle.perform(run, sent))
        return run.ended

    async def persist(self, prediction_id: str) -> None:
        """Make a deferred prediction durable now, as it stands, and return once it is;
        from then on it is written like any other. At once for one already written."""
        run = self.ctx.deferred.get(prediction_id)
        if run is None:
            return
        if run.unwritten is not None:
            self.lifecycle.recorder.insert_unwritten(run)
            # From now on its id may be known: the bus gets what it missed, then the rest.
            bus = self.ctx.bus
            if run.started_at is not None:
                bus.publish(prediction_id, "start", {})
            if run.all_logs:
                bus.publish(prediction_id, "logs", "".join(run.all_logs))
            for item in run.outputs:
                bus.publish(prediction_id, "output", item)
        if run.written is not None:
            await asyncio.shield(run.written)
