"""What the parts of the scheduler share: the platform's services, the pools, the
runs in progress, and the threads that the blocking store calls run on."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vendo.config import Settings
from vendo.queue import EventBus, Queue
from vendo.scheduler.metrics import SchedulerMetrics
from vendo.scheduler.pool import RunnerPool
from vendo.scheduler.run import Outcomes, Run
from vendo.scheduler.spec import is_iterator_schema
from vendo.store import Store
from vendo.store.batch import BatchWriter
from vendo.store.prediction_writes import Fence
from vendo.store.sealing import SecretBox, is_sealed

__all__ = ["SchedulerContext"]

T = TypeVar("T")


def _ignore(pool: str) -> None:
    return None


@dataclass(eq=False)
class SchedulerContext:
    """Shared by :class:`~vendo.scheduler.Scheduler` and the modules a run goes through."""

    settings: Settings
    store: Store
    bus: EventBus
    storage: Any
    queue: Queue
    # The per-prediction writes (claims, start, logs, outputs, the end) share
    # transactions: see vendo.store.batch.
    writer: BatchWriter
    outcomes: Outcomes = field(default_factory=Outcomes)
    metrics: SchedulerMetrics = field(default_factory=SchedulerMetrics)
    pools: dict[str, RunnerPool] = field(default_factory=dict)  # by pool key
    iterators: dict[str, bool] = field(default_factory=dict)  # version id -> iterator Output
    runs: dict[str, Run] = field(default_factory=dict)
    # Deferred runs (see vendo.scheduler.sync) until they are written and their waiter told.
    deferred: dict[str, Run] = field(default_factory=dict)
    stopping: bool = False
    # This process was found lost (scaled mode): another recovered its claims, so its
    # runs end without writing anything (their writes would be fenced off anyway).
    abandoned: bool = False
    # Called when a run frees its pool slot (the claim loop may claim the next job).
    on_slot_freed: Callable[[str], None] = _ignore
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # The store is blocking. The scheduler has its own threads for it: its writes
    # never queue behind (or starve) the HTTP server's thread pool.
    _executor: ThreadPoolExecutor | None = None
    _secrets: SecretBox | None = None  # opens sealed secret inputs, made when needed

    def fence(self, run: Run) -> Fence:
        """The claim ``run``'s writes are fenced by: on PostgreSQL, where another
        process may recover it; None on SQLite (one process) or without a job yet."""
        if not run.job.id or self.store.dialect == "sqlite":
            return None
        return (run.job.id, self.queue.worker_id)

    async def blocking(self, func: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(4, thread_name_prefix="vendo-scheduler")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(func, *args))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def release_slot(self, run: Run) -> None:
        """The run no longer needs its pool slot: let the next job be claimed now, while
        its terminal write is still on its way (it joins the same batch). The caller
        then moves the run past the phases that hold a slot."""
        if run.phase.holds_slot:
            run.pool.unreserve()
            self.on_slot_freed(run.pool.key)

    def open_secrets(self, run_input: dict[str, Any] | None) -> dict[str, Any]:
        """The inputs for the child: sealed secret inputs opened only now, never stored
        in clear."""
        if not is_sealed(run_input):
            return run_input or {}
        if self._secrets is None:
            self._secrets = SecretBox.from_settings(self.settings)
        return self._secrets.open(run_input)

    async def is_iterator(self, version_id: str) -> bool:
        found = self.iterators.get(version_id)
        if found is None:
            version = await self.blocking(self.store.catalog.version, version_id)
            found = is_iterator_schema(version.openapi_schema if version else None)
        return found

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
