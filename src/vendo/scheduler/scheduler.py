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
import socket
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from vendo.config import Settings
from vendo.errors import ConfigError
from vendo.hardware import Hardware, server_hardware
from vendo.queue import EventBus, Queue
from vendo.scheduler.claiming import TICK, Claimer
from vendo.scheduler.context import SchedulerContext
from vendo.scheduler.instance import InstanceEvent, InstanceObserver, InstanceState
from vendo.scheduler.metering import UsageMeter
from vendo.scheduler.pool import PoolOptions, RunnerPool
from vendo.scheduler.process import RunnerSpec
from vendo.scheduler.recording import Recorder
from vendo.scheduler.releases import VERSION, Releases
from vendo.scheduler.run import Run
from vendo.scheduler.running import RunLifecycle
from vendo.scheduler.spec import runner_spec
from vendo.scheduler.sync import SyncRuns
from vendo.store import Store
from vendo.store.batch import BatchWriter
from vendo.store.tables import PredictionRow, VersionRow

__all__ = ["Scheduler"]


def _key(key_or_version: str) -> str:
    """A pool key; a bare version id means the version's shared pool."""
    return key_or_version if ":" in key_or_version else VERSION + key_or_version


def _server_worker(settings: Settings, store: Store) -> str | None:
    """A ``vendo serve``'s worker id on PostgreSQL (its claims, its ``agents`` row): its
    host and port, unique among the servers of a host and the same across a restart,
    which recovers its own claims. On SQLite (one process) the queue's default."""
    if store.dialect == "sqlite":
        return None
    return f"{socket.gethostname()}:{settings.port}"


class Scheduler:
    """Runner pools (a version's shared one, a deployment's), fed from the durable
    queue."""

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
        hardware: Hardware | None = None,
        serves: frozenset[str] | None = None,
    ) -> None:
        """``serves``: the SKUs whose pools this scheduler runs (an agent's); None: all."""
        self.settings = settings
        self.store = store
        self.bus = bus
        self.storage = storage
        self.queue = queue or Queue(store, worker_id=_server_worker(settings, store))
        self._ctx = SchedulerContext(
            settings, store, bus, storage, self.queue, writer=BatchWriter(store)
        )
        options = PoolOptions(
            idle_timeout=settings.idle_timeout,
            setup_timeout=settings.setup_timeout,
            cancel_grace=settings.cancel_grace,
            max_restarts=settings.max_restarts,
        )
        self._lifecycle = RunLifecycle(self._ctx, Recorder(self._ctx))
        ctx = self._ctx
        self.meter = UsageMeter(
            lambda rows: ctx.blocking(store.usage.record, rows), settings.usage_flush_interval
        )
        self._observers: list[InstanceObserver] = [self.meter.observe]
        if hardware is None:
            try:
                hardware = server_hardware(settings)
            except ConfigError:
                hardware = None  # the app reports a bad hardware file; run unplaced here
        self.releases = Releases(
            self._ctx,
            spec_for=spec_for,
            options=options,
            hardware=hardware,
            observer=self._instance_changed,
            serves=serves,
        )
        self._claimer = Claimer(self._ctx, self._lifecycle, releases=self.releases, tick=tick)
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

    def abandon(self) -> None:
        """This process was found lost (scaled mode): another process recovered its
        claims. Claim nothing more; the runs in progress end without writing anything
        (their writes would be fenced off anyway: :mod:`vendo.queue.claims`). Then
        :meth:`stop` as usual."""
        self._ctx.stopping = True
        self._ctx.abandoned = True

    def notify(self, pool: str) -> None:
        """A job for the pool ``pool`` (a pool key, or a bare version id: its shared
        pool) was queued by someone else: claim soon."""
        self._claimer.notify(_key(pool))

    async def deployment_changed(self, key: str, *, disabled: bool = False) -> None:
        """A deployment's new release was recorded: serve it (scale, or drain into the
        new version). ``disabled`` (min = max = 0): its queued and running predictions
        are canceled as well."""
        await self._claimer.refresh(key)
        if not disabled:
            return
        ctx = self._ctx
        for row in await ctx.blocking(ctx.queue.cancel_pool, key):
            self._lifecycle.recorder.publish_row_end(row)
        for pid, run in list(ctx.runs.items()):
            if run.pool.key == key:
                await self._lifecycle.cancel(pid)

    def stop_pools_of(self, owner_id: int) -> None:
        """The account ran out of credit: its billed pools (private models, deployments)
        stop their instances as soon as they have no work. Shared public pools go on:
        their time is not billed to their owner."""
        for pool in self._ctx.pools.values():
            if pool.release.owner_id == owner_id and not pool.release.shared:
                pool.stop_when_idle()

    def add_instance_observer(self, observer: InstanceObserver) -> None:
        """Call ``observer`` on every state change of every instance (metering)."""
        self._observers.append(observer)

    def _instance_changed(self, event: InstanceEvent) -> None:
        for observer in self._observers:
            observer(event)

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

    # --- introspection (tests, metrics) -----------------------------------------------

    def pool(self, key: str) -> RunnerPool | None:
        """The pool ``key`` (a bare version id: its shared pool), if made."""
        return self._ctx.pools.get(_key(key))

    def instance_count(self, key: str) -> int:
        """Instances of the pool ``key`` (starting, running or draining)."""
        pool = self._ctx.pools.get(_key(key))
        return len(pool.instances) if pool is not None else 0

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The scheduler's Prometheus counters (predictions ended, their durations)."""
        return self._ctx.metrics.registry

    def pool_states(self) -> dict[str, dict[str, int]]:
        """Per pool key: its instances by state (``setting_up``, ``idle``, ``active``)
        and ``unplaced`` (1 while this machine cannot place the instance it wants)."""
        states: dict[str, dict[str, int]] = {}
        for key, pool in self._ctx.pools.items():
            counts = {s.value: 0 for s in InstanceState if s is not InstanceState.STOPPED}
            for instance in pool.instances:
                if instance.state is not InstanceState.STOPPED:
                    counts[instance.state.value] += 1
            counts["unplaced"] = int(pool.unplaced is not None)
            states[key] = counts
        return states

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
