"""The scheduler: runs queued predictions on the versions' runner pools.

One :class:`Scheduler` runs per serve process (in scaled mode, per agent). It is a
facade over the parts of a run's life, each in a module of its own:

- :mod:`~vendo.scheduler.claiming`: the claim loop; new predictions enter here;
- :mod:`~vendo.scheduler.running`: a claimed run, start to end (``perform``);
- :mod:`~vendo.scheduler.recording`: runner events -> bus events and batched writes;
- :mod:`~vendo.scheduler.sync`: the synchronous wait (``run_and_wait``);
- :mod:`~vendo.scheduler.run`: a run's phase and data; :mod:`~vendo.scheduler.pool` and
  :mod:`~vendo.scheduler.process`: runner children.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from vendo.config import Settings
from vendo.queue import EventBus, Queue
from vendo.scheduler.claiming import TICK, Claimer
from vendo.scheduler.context import SchedulerContext
from vendo.scheduler.instances import UsageMeter
from vendo.scheduler.pool import PoolOptions, RunnerPool
from vendo.scheduler.process import RunnerSpec
from vendo.scheduler.recording import Recorder
from vendo.scheduler.run import Run
from vendo.scheduler.running import RunLifecycle
from vendo.scheduler.spec import runner_spec
from vendo.scheduler.sync import SyncRuns
from vendo.store import Store
from vendo.store.batch import BatchWriter
from vendo.store.tables import PredictionRow, VersionRow

__all__ = ["Scheduler"]


class Scheduler:
    """Runner pools per version, fed from the durable queue."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: EventBus,
        storage: Any = None,
        *,
        queue: Queue | None = None,
        spec_for: Callable[[VersionRow], RunnerSpec] = runner_spec,
        tick: float = TICK,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.storage = storage
        self.queue = queue or Queue(store)
        self._ctx = SchedulerContext(
            settings, store, bus, storage, self.queue, writer=BatchWriter(store)
        )
        options = PoolOptions(
            idle_timeout=settings.idle_timeout,
            setup_timeout=settings.setup_timeout,
            cancel_grace=settings.cancel_grace,
            max_restarts=settings.max_restarts,
        )
        ctx = self._ctx
        self.meter = UsageMeter(
            lambda rows: ctx.blocking(store.usage.record, rows), settings.usage_flush_interval
        )
        ctx.instances = self.meter
        self._lifecycle = RunLifecycle(self._ctx, Recorder(self._ctx))
        self._claimer = Claimer(
            self._ctx, self._lifecycle, spec_for=spec_for, options=options, tick=tick
        )
        self.sync = SyncRuns(self._ctx, self._lifecycle, self._claimer)

    async def start(self) -> None:
        """Recover jobs left by a stopped server, then start claiming."""
        self.meter.start()
        await self._claimer.start()

    async def stop(self) -> None:
        """Stop claiming, let running predictions end briefly, stop every runner."""
        ctx = self._ctx
        ctx.stopping = True
        await self._claimer.stop()
        # shutdown lets the children finish in-flight work (within close()'s timeout)
        await asyncio.gather(*(p.close() for p in ctx.pools.values()), return_exceptions=True)
        if ctx.tasks:
            _, pending = await asyncio.wait(list(ctx.tasks), timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        ctx.pools.clear()
        await self.meter.close()  # after the runners: their last seconds are written
        await ctx.writer.close()
        ctx.close()

    def notify(self, version_id: str) -> None:
        """A job for ``version_id`` was queued (by someone else): claim soon."""
        self._claimer.notify(version_id)

    async def schedule(
        self, prediction: PredictionRow, kind: str = "predict", *, count_run: bool = False
    ) -> None:
        """Queue ``prediction`` durably (returns once committed) and run it."""
        await self._claimer.schedule(prediction, kind, count_run=count_run)

    async def run_and_wait(
        self,
        prediction: PredictionRow,
        wait: float,
        *,
        count_run: bool = False,
        before_queue: Callable[[], None] | None = None,
    ) -> PredictionRow | None:
        """Run ``prediction`` and wait up to ``wait`` seconds for its end: the
        prediction as it ended, or None when it did not end in time (it is recorded and
        goes on). See :meth:`vendo.scheduler.sync.SyncRuns.run_and_wait`."""
        return await self.sync.run_and_wait(
            prediction, wait, count_run=count_run, before_queue=before_queue
        )

    async def cancel(self, prediction_id: str, reason: str = "canceled") -> bool:
        """Cancel a queued or running prediction. False when it is neither (finished,
        unknown, or claimed by another scheduler)."""
        return await self._lifecycle.cancel(prediction_id, reason)

    def stop_pools_of(self, owner_id: int) -> None:
        """The account ran out of credit: its billed pools (private models) stop their
        runners as soon as they have no work. Shared public pools go on: their time is
        not billed to their owner."""
        for pool in self._ctx.pools.values():
            if pool.identity.owner_id == owner_id and not pool.identity.shared:
                pool.stop_when_idle()

    # --- introspection (tests, metrics) -----------------------------------------------

    def pool(self, version_id: str) -> RunnerPool | None:
        return self._ctx.pools.get(version_id)

    def pools(self) -> list[RunnerPool]:
        return list(self._ctx.pools.values())

    def running(self) -> list[str]:
        return list(self._ctx.runs)

    def run(self, prediction_id: str) -> Run | None:
        """The run of a prediction while it runs here (read-only: the lifecycle owns it)."""
        return self._ctx.runs.get(prediction_id)

    def outcome(self, prediction_id: str) -> dict[str, Any] | None:
        """How a prediction this scheduler ran ended, as written to the store: ``status``,
        ``output`` (stored form), ``error``, ``logs``, ``metrics``, ``started_at``,
        ``completed_at``, ``cancel_reason``. None when unknown here or forgotten
        (:data:`~vendo.scheduler.run.OUTCOME_KEEP` seconds after the end). Available
        once ``done`` is published. The dict is shared: do not change it."""
        return self._ctx.outcomes.get(prediction_id)

    @property
    def writer(self) -> BatchWriter:
        """The group-committing writer (its ``batches`` and ``writes`` counters)."""
        return self._ctx.writer
