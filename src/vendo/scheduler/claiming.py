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

from vendo.errors import RunnerError
from vendo.queue import Claimed, Job, claims
from vendo.scheduler.context import SchedulerContext
from vendo.scheduler.pool import RunnerPool
from vendo.scheduler.releases import NotServed, Releases
from vendo.scheduler.run import Run
from vendo.scheduler.running import DEADLINE_REASON, RunLifecycle
from vendo.status import PredictionStatus, pool_key
from vendo.store import utcnow
from vendo.store.tables import PredictionRow

__all__ = ["TICK", "Claimer", "new_run"]

log = logging.getLogger(__name__)

TICK = 0.5  # seconds between deadline checks when nothing else wakes the loop
NOT_SERVED_RECHECK = 10.0  # seconds before a pool on hardware not served here is read again


def new_run(pool: RunnerPool, prediction: PredictionRow, job_id: int, kind: str) -> Run:
    """A run of a prediction this scheduler inserted itself (no claim read needed)."""
    job = Job(job_id, kind, prediction.id, prediction.version_id, prediction.created_at, pool.key)
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
        releases: Releases,
        tick: float = TICK,
    ) -> None:
        self.ctx = ctx
        self.lifecycle = lifecycle
        self.releases = releases
        self._tick = tick
        self._dirty: set[str] = set()
        # Pools that may have queued jobs: notified, or their last claim was full. A
        # freed slot claims only for these, so a quiet pool costs no empty claims.
        self._maybe_queued: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._not_served: dict[str, float] = {}  # pool key -> when to look again
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
        for key in await ctx.blocking(ctx.queue.pending_pools):
            self._dirty.add(key)
            self._maybe_queued.add(key)
        for key in await self.releases.standing():
            self._dirty.add(key)  # deployments with min_instances start theirs
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

    def notify(self, key: str) -> None:
        """A job for the pool ``key`` was queued: claim soon."""
        self._maybe_queued.add(key)
        self._kick(key)

    def _kick(self, key: str) -> None:
        self._dirty.add(key)
        if self._wake is not None:
            self._wake.set()

    def _slot_freed(self, key: str) -> None:
        # Only a pool with jobs that may be waiting needs a claim (a wake of the loop).
        if not self.ctx.stopping and key in self._maybe_queued:
            self._kick(key)

    # --- new predictions --------------------------------------------------------------

    def pool_with_room(self, prediction: PredictionRow, kind: str) -> RunnerPool | None:
        """The prediction's pool when it may start at once: a warm runner of its version
        with a free slot, and no job of the pool that may be waiting before it."""
        key = pool_key(prediction.version_id, prediction.deployment, kind)
        pool = self.ctx.pools.get(key)
        if (
            kind == "predict"
            and pool is not None
            and self._wake is not None
            and not self.ctx.stopping
            and key not in self._maybe_queued
            and pool.version_id == prediction.version_id
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
            self.notify(pool_key(prediction.version_id, prediction.deployment, kind))
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
                for key in dirty:
                    await self._fill(key)
                now = loop.time()
                if now - last_sweep >= self._tick:
                    last_sweep = now
                    await self._enforce_deadlines()
                    await self._requested_cancels()
                    await self._autoscale()
            except asyncio.CancelledError:
                raise
            except Exception:
                # a database hiccup must not stop scheduling for good
                log.exception("scheduler iteration failed; retrying")
                await asyncio.sleep(self._tick)

    async def _pool(self, key: str) -> RunnerPool | None:
        """The pool ``key``, made on first use; None for one that cannot run (its queued
        jobs are failed)."""
        ctx = self.ctx
        pool = ctx.pools.get(key)
        if pool is not None:
            return pool
        if self._not_served.get(key, 0.0) > asyncio.get_running_loop().time():
            return None
        try:
            release = await self.releases.release(key)
        except NotServed:
            # another agent's hardware: its jobs stay queued for it; look again later (a
            # deployment may move to hardware served here)
            self._not_served[key] = asyncio.get_running_loop().time() + NOT_SERVED_RECHECK
            return None
        except RunnerError as exc:
            await self._fail_unrunnable(key, exc.detail)
            return None
        pool = ctx.pools.get(key)  # made meanwhile by another fill
        if pool is None:
            pool = ctx.pools[key] = self.releases.new_pool(key, release)
        return pool

    async def _fill(self, key: str) -> None:
        pool = await self._pool(key)
        if pool is None:
            return
        if key not in self._maybe_queued or self.ctx.stopping:
            return
        if not pool.capacity and pool.release.max_instances > 0:
            pool.autoscale(1)  # from zero: the first instance starts with the first job
        free = pool.free_slots
        if free <= 0:
            return
        self._maybe_queued.discard(key)
        # Reserve before the claim commits: a notify meanwhile must not claim them twice.
        for _ in range(free):
            pool.reserve()
        try:
            claimed, more = await self.ctx.writer.add(
                claims.claim(key, free, self.ctx.queue.worker_id)
            )
        except BaseException:
            for _ in range(free):
                pool.unreserve()
            self._maybe_queued.add(key)
            raise
        for _ in range(free - len(claimed)):
            pool.unreserve()
        if more:
            self._maybe_queued.add(key)
        if any(not pool.knows(item.job.version_id) for item in claimed):
            # a release changed in the store before this scheduler heard of it
            await self.refresh(key)
        for item in claimed:
            run = Run(item.job, pool, item)
            self.ctx.runs[item.job.prediction_id] = run
            self.ctx.spawn(self.lifecycle.perform(run))

    async def refresh(self, key: str) -> None:
        """Read the pool's release again (a deployment changed): scale, or drain into
        the new release."""
        pool = self.ctx.pools.get(key)
        if pool is None:
            self._kick(key)
            return
        try:
            release = await self.releases.release(key)
        except RunnerError as exc:
            log.warning("%s: %s", key, exc.detail)
            return
        pool.reconfigure(release)
        self._maybe_queued.add(key)
        self._kick(key)

    async def _fail_unrunnable(self, key: str, error: str) -> None:
        # Claim and fail everything queued for a pool that cannot run at all.
        ctx, recorder = self.ctx, self.lifecycle.recorder
        more = True
        while more:
            claimed, more = await ctx.writer.add(claims.claim(key, 100, ctx.queue.worker_id))
            for item in claimed:
                await recorder.record_failure(item, error, job_id=item.job.id)

    async def _autoscale(self) -> None:
        """One autoscaler tick: every pool's target from its queue depth (bounded: what
        its max instances would take), and jobs queued without a notify here (another
        process's API, a lost wake-up, a run given back) found by one read."""
        ctx = self.ctx
        # no pool yet: on SQLite nothing else queues jobs; on PostgreSQL another process's
        # API may have (scaled mode), so look anyway
        if not ctx.pools and ctx.store.dialect == "sqlite":
            return
        pending = await ctx.blocking(ctx.queue.pending_pools)
        for key in pending:
            self._maybe_queued.add(key)
            pool = ctx.pools.get(key)
            if pool is None or pool.free_slots:
                self._kick(key)
        waiting = set(pending)
        for key, pool in list(ctx.pools.items()):
            queued = 0
            if key in waiting:
                room = max(1, pool.release.max_instances * pool.slots - pool.reserved)
                queued = await ctx.blocking(ctx.queue.depth, key, room)
            before = pool.capacity
            pool.autoscale(queued)
            if pool.capacity > before:
                self._kick(key)

    async def _requested_cancels(self) -> None:
        """Cancels asked of this process's runs in the database (scaled mode): those
        whose relayed cancel was lost while this process's relay was disconnected."""
        ctx = self.ctx
        if not ctx.runs or ctx.store.dialect == "sqlite":
            return
        for pid, reason in await ctx.blocking(ctx.queue.cancels_requested):
            run = ctx.runs.get(pid)
            if run is not None and run.cancel_reason is None:
                await self.lifecycle.cancel(pid, reason)

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
