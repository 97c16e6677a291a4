"""Claiming: which queued job runs next, on which version's pool.

The claim loop wakes on :meth:`Claimer.notify` (a new prediction, a freed slot) or on a
short tick (deadlines, missed notifications), claims at most the free slots of each
version's pool, and hands each claimed job to :meth:`RunLifecycle.perform
<vendo.scheduler.running.RunLifecycle.perform>` in a task of its own. Jobs beyond a
version's slots stay queued in the database until a slot frees; they are never refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from pathlib import Path

from vendo.errors import RunnerError
from vendo.queue import Claimed, Job, claims, queue_key, queued_version
from vendo.scheduler.context import SchedulerContext
from vendo.scheduler.pool import PoolOptions, RunnerPool
from vendo.scheduler.process import RunnerSpec
from vendo.scheduler.run import Run
from vendo.scheduler.running import DEADLINE_REASON, RunLifecycle
from vendo.scheduler.spec import is_iterator_schema, local_package, needs_package, train_spec
from vendo.status import PredictionStatus
from vendo.store import utcnow
from vendo.store.tables import PredictionRow, VersionRow

__all__ = ["TICK", "Claimer", "new_run"]

log = logging.getLogger(__name__)

TICK = 0.5  # seconds between deadline checks when nothing else wakes the loop


def new_run(pool: RunnerPool, prediction: PredictionRow, job_id: int, kind: str) -> Run:
    """A run of a prediction this scheduler inserted itself (no claim read needed)."""
    job = Job(job_id, kind, prediction.id, prediction.version_id, prediction.created_at)
    claimed = Claimed(
        job,
        PredictionStatus.STARTING,
        prediction.run_input,
        prediction.deadline,
        prediction.owner_id,
        prediction.created_at,
        None,
        prediction.metrics,
        prediction.webhook,
    )
    return Run(job, pool, claimed)


class Claimer:
    """The claim loop of one scheduler, and the way new predictions enter it."""

    def __init__(
        self,
        ctx: SchedulerContext,
        lifecycle: RunLifecycle,
        *,
        spec_for: Callable[[VersionRow], RunnerSpec],
        options: PoolOptions,
        tick: float = TICK,
    ) -> None:
        self.ctx = ctx
        self.lifecycle = lifecycle
        self._spec_for = spec_for
        self._options = options
        self._tick = tick
        self._dirty: set[str] = set()
        # Versions that may have queued jobs: notified, or their last claim was full. A
        # freed slot claims only for these, so a quiet version costs no empty claims.
        self._maybe_queued: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        ctx.on_slot_freed = self._slot_freed

    # --- start, stop, wake ------------------------------------------------------------

    async def start(self) -> None:
        """Recover jobs left by a stopped server, then start claiming."""
        ctx = self.ctx
        self._wake = asyncio.Event()
        # Embedded (SQLite): this is the only claimer, so every claimed job is ours. On
        # PostgreSQL other agents may be running theirs: recover only our own.
        owner = None if ctx.store.dialect == "sqlite" else ctx.queue.worker_id
        recovery = await ctx.blocking(ctx.queue.recover, owner)
        if recovery.failed:
            log.warning("%d predictions were interrupted by a restart", len(recovery.failed))
        for version_id in await ctx.blocking(ctx.queue.pending_versions):
            self._dirty.add(version_id)
            self._maybe_queued.add(version_id)
        self._loop_task = asyncio.create_task(self._loop(), name="vendo-scheduler")

    async def stop(self) -> None:
        if self._loop_task is not None:
            # The loop checks ctx.stopping; cancel too, but never rely on it alone
            # (3.11's wait_for can swallow a cancellation that races a wake-up).
            if self._wake is not None:
                self._wake.set()
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task

    def notify(self, version_id: str) -> None:
        """A job for ``version_id`` was queued: claim soon."""
        self._maybe_queued.add(version_id)
        self._kick(version_id)

    def _kick(self, version_id: str) -> None:
        self._dirty.add(version_id)
        if self._wake is not None:
            self._wake.set()

    def _slot_freed(self, version_id: str) -> None:
        # Only a version with jobs that may be waiting needs a claim (a wake of the loop).
        if not self.ctx.stopping and version_id in self._maybe_queued:
            self._kick(version_id)

    # --- new predictions --------------------------------------------------------------

    def pool_with_room(self, prediction: PredictionRow, kind: str) -> RunnerPool | None:
        """The version's pool when ``prediction`` may start at once: a warm runner with a
        free slot, and no job of the version that may be waiting before it."""
        version_id = prediction.version_id
        pool = self.ctx.pools.get(version_id)
        if (
            kind == "predict"
            and pool is not None
            and self._wake is not None
            and not self.ctx.stopping
            and version_id not in self._maybe_queued
            and pool.free_slots > 0
            and pool.ready() is not None
        ):
            return pool
        return None

    async def schedule(
        self, prediction: PredictionRow, kind: str = "predict", *, count_run: bool = False
    ) -> None:
        """Queue ``prediction`` and its job durably (returns once committed), then run it.

        The insert joins the writer's next batch. When it may start at once (see
        :meth:`pool_with_room`), the job is inserted already claimed and starts at once:
        no separate claim transaction, no read."""
        ctx = self.ctx
        pool = self.pool_with_room(prediction, kind)
        if pool is not None:
            pool.reserve()
        try:
            job_id: int = await ctx.writer.add(
                functools.partial(
                    ctx.queue.submit_in,
                    prediction=prediction,
                    kind=kind,
                    count_run=count_run,
                    claimed_by=ctx.queue.worker_id if pool is not None else None,
                )
            )
        except BaseException:
            if pool is not None:
                pool.unreserve()
            raise
        if pool is None:
            self.notify(queue_key(kind, prediction.version_id))
            return
        if ctx.stopping:
            # claimed but never started: the next start requeues it (Queue.recover)
            pool.unreserve()
            return
        run = new_run(pool, prediction, job_id, kind)
        ctx.runs[prediction.id] = run
        ctx.spawn(self.lifecycle.perform(run))

    # --- the loop ---------------------------------------------------------------------

    async def _loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        last_sweep = 0.0
        while not self.ctx.stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._tick)
            self._wake.clear()
            if self.ctx.stopping:
                return
            try:
                # claim first: a new job should not wait behind the deadline sweep
                dirty, self._dirty = self._dirty, set()
                for version_id in dirty:
                    await self._fill(version_id)
                now = loop.time()
                if now - last_sweep >= self._tick:
                    last_sweep = now
                    await self._enforce_deadlines()
                    await self._look_for_unnotified_jobs()
            except asyncio.CancelledError:
                raise
            except Exception:
                # a database hiccup must not stop scheduling for good
                log.exception("scheduler iteration failed; retrying")
                await asyncio.sleep(self._tick)

    async def _pool(self, key: str) -> RunnerPool | None:
        """The pool of a queue (a version's, or ``train:<id>``: its runner in train
        mode), made on first use; None for a version that cannot run (its queued jobs
        are failed)."""
        ctx = self.ctx
        pool = ctx.pools.get(key)
        if pool is not None:
            return pool
        kind, version_id = queued_version(key)
        version = await ctx.blocking(ctx.store.catalog.version, version_id)
        try:
            if version is None:
                raise RunnerError(f"version {version_id} does not exist")
            if needs_package(version, ctx.storage):  # scaled mode, pushed elsewhere
                version = await ctx.blocking(
                    local_package, version, ctx.storage, Path(ctx.settings.data_dir)
                )
            spec = self._spec_for(version)
            if kind == "train":
                spec = train_spec(version, spec)
        except RunnerError as exc:
            await self._fail_unrunnable(key, exc.detail)
            return None
        pool = ctx.pools[key] = RunnerPool(key, spec, self._options)
        ctx.iterators[key] = kind == "predict" and is_iterator_schema(version.openapi_schema)
        return pool

    async def _fill(self, version_id: str) -> None:
        pool = await self._pool(version_id)
        if pool is None:
            return
        free = pool.free_slots
        if free <= 0 or self.ctx.stopping or version_id not in self._maybe_queued:
            return
        self._maybe_queued.discard(version_id)
        # Reserve before the claim commits: a notify meanwhile must not claim them twice.
        for _ in range(free):
            pool.reserve()
        try:
            claimed, more = await self.ctx.writer.add(
                claims.claim(version_id, free, self.ctx.queue.worker_id)
            )
        except BaseException:
            for _ in range(free):
                pool.unreserve()
            self._maybe_queued.add(version_id)
            raise
        for _ in range(free - len(claimed)):
            pool.unreserve()
        if more:
            self._maybe_queued.add(version_id)
        for item in claimed:
            run = Run(item.job, pool, item)
            self.ctx.runs[item.job.prediction_id] = run
            self.ctx.spawn(self.lifecycle.perform(run))

    async def _fail_unrunnable(self, version_id: str, error: str) -> None:
        # Claim and fail everything queued for a version that cannot run at all.
        ctx, recorder = self.ctx, self.lifecycle.recorder
        more = True
        while more:
            claimed, more = await ctx.writer.add(claims.claim(version_id, 100, ctx.queue.worker_id))
            for item in claimed:
                await recorder.record_failure(item, error, job_id=item.job.id)

    async def _look_for_unnotified_jobs(self) -> None:
        """Jobs queued without a notify here (another process's API, a lost wake-up)
        are found by one read per tick while some pool has room."""
        ctx = self.ctx
        # no pool at all: nothing ran here yet, jobs queued elsewhere may be waiting
        if ctx.pools and not any(pool.free_slots for pool in ctx.pools.values()):
            return
        for version_id in await ctx.blocking(ctx.queue.pending_versions):
            pool = ctx.pools.get(version_id)
            if pool is None or pool.free_slots:
                self._maybe_queued.add(version_id)
                self._kick(version_id)

    async def _enforce_deadlines(self) -> None:
        ctx, now = self.ctx, utcnow()
        # Runs here first: a deferred one is not in the store to be found.
        for pid, here in list(ctx.runs.items()):
            deadline = here.claimed.deadline
            if deadline is not None and deadline <= now and here.cancel_reason is None:
                await self.lifecycle.cancel(pid, DEADLINE_REASON)
        for row in await ctx.blocking(ctx.store.predictions.overdue, now):
            run = ctx.runs.get(row.id)
            if run is None or run.cancel_reason is None:
                # queued here or anywhere: cancel_queued is atomic against claims
                await self.lifecycle.cancel(row.id, DEADLINE_REASON)
