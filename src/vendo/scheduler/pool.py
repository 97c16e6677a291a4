"""A runner pool: the warm runners of one model version.

The pool owns the version's runner (today one per version; the shape leaves room for
several under an autoscaler) and the version's concurrency slots. The scheduler asks
it how many jobs it may claim (:attr:`RunnerPool.free_slots`), reserves one slot per
claimed job, and gets a ready runner from :meth:`RunnerPool.runner`, which cold-starts
one when there is none. When the last job finishes, a timer stops the runner after the
idle timeout: scale to zero. A crashed child is replaced by the driver itself
(:class:`~vendo.scheduler.process.RunnerProcess`); one that keeps crashing becomes
defunct and the pool drops it, so the next job starts afresh.

Each runner is an *instance* (:mod:`vendo.scheduler.instances`): the pool tells its
observer, the usage meter, of every change of an instance's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from vendo.errors import RunnerError
from vendo.scheduler.instances import (
    Instance,
    InstanceObserver,
    InstanceState,
    NoObserver,
    PoolIdentity,
    new_instance_id,
)
from vendo.scheduler.process import RunnerProcess, RunnerSpec, RunnerState, Slot

__all__ = ["PoolOptions", "RunnerPool"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolOptions:
    idle_timeout: float = 300.0
    setup_timeout: float = 0.0
    cancel_grace: float = 10.0
    max_restarts: int = 3


class RunnerPool:
    """Runners of one version, its concurrency slots and its idle timer."""

    def __init__(
        self,
        version_id: str,
        spec: RunnerSpec,
        options: PoolOptions,
        *,
        on_runner_log: Callable[[str, str], None] | None = None,
        identity: PoolIdentity | None = None,
        observer: InstanceObserver | None = None,
    ) -> None:
        self.version_id = version_id
        self.spec = spec
        self.options = options
        self.identity = identity or PoolIdentity(f"version:{version_id}", "cpu", 0, "", version_id)
        self._observer = observer or NoObserver()
        self._stop_when_idle = False  # the owner is out of credit: no idle time
        self._on_runner_log = on_runner_log
        self._runner: RunnerProcess | None = None
        self._starting: asyncio.Task[RunnerProcess] | None = None
        self._reserved = 0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self.cold_starts = 0
        self.last_setup_logs = ""  # output of the last failed setup, for its predictions
        self._closed = False

    # --- slots -----------------------------------------------------------------------

    @property
    def slots(self) -> int:
        """The version's concurrency: what the child reported, else what cog.yaml asks."""
        if self._runner is not None and self._runner.state in (RunnerState.READY, RunnerState.BUSY):
            return self._runner.max_concurrency
        return max(1, self.spec.max_concurrency or 1)

    @property
    def reserved(self) -> int:
        return self._reserved

    @property
    def free_slots(self) -> int:
        return max(0, self.slots - self._reserved)

    @property
    def warm(self) -> bool:
        return self._runner is not None

    def reserve(self) -> None:
        """One claimed job holds one slot until :meth:`unreserve`."""
        self._reserved += 1
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def unreserve(self) -> None:
        """The claimed job no longer needs its slot (it ended, or was never claimed)."""
        self._reserved = max(0, self._reserved - 1)
        self._slot_freed.set()
        self._slot_freed = asyncio.Event()
        if self._reserved == 0 and self._runner is not None:
            if self._stop_when_idle:
                self._drop(self._runner)
            else:
                self._arm_idle_timer()

    # --- runners ---------------------------------------------------------------------

    def ready(self) -> RunnerProcess | None:
        """The warm runner if it takes work right now (no cold start, no setup to wait
        for), else None: then await :meth:`runner`."""
        runner = self._runner
        if self._closed or runner is None or not runner.accepting:
            return None
        return runner

    async def runner(self) -> RunnerProcess:
        """A started runner whose setup has ended (READY, or raises RunnerError)."""
        if self._closed:
            raise RunnerError("the scheduler is stopping")
        runner = self._runner
        if runner is not None and runner.state is RunnerState.DEFUNCT:
            self._drop(runner)
            runner = None
        if runner is None:
            if self._starting is None:
                self._starting = asyncio.ensure_future(self._cold_start())
            try:
                runner = await asyncio.shield(self._starting)
            finally:
                if self._starting is not None and self._starting.done():
                    self._starting = None
        timeout = self.options.setup_timeout or None
        try:
            state = await runner.wait_ready(timeout)
            if self._closed:
                raise RunnerError("the scheduler is stopping")
        except asyncio.TimeoutError:
            self._drop(runner)
            raise RunnerError(
                f"setup did not finish within {self.options.setup_timeout:g} seconds"
            ) from None
        if state in (RunnerState.SETUP_FAILED, RunnerState.DEFUNCT):
            self.last_setup_logs = "".join(runner.setup.logs)
        if state is RunnerState.SETUP_FAILED:
            # Setup failures are deterministic: report them, drop the runner so a later
            # job (perhaps after the cause was fixed) tries a fresh one.
            self._drop(runner)
            raise RunnerError(f"setup failed: {runner.setup_error or 'unknown error'}")
        if state is RunnerState.DEFUNCT:
            self._drop(runner)
            raise RunnerError(runner.setup_error or "the runner keeps crashing")
        return runner

    async def _cold_start(self) -> RunnerProcess:
        self._stop_when_idle = False
        instance = Instance(new_instance_id(), self.identity)
        runner = RunnerProcess(
            self.spec,
            cancel_grace=self.options.cancel_grace,
            max_restarts=self.options.max_restarts,
            on_runner_log=self._on_runner_log,
            on_state=functools.partial(self._transition, instance),
        )
        self.cold_starts += 1
        log.info("cold start of a runner for version %s", self.version_id)
        try:
            await runner.start()
        except OSError as exc:
            self._transition(instance, InstanceState.STOPPED)
            raise RunnerError(f"could not start the runner: {exc}") from exc
        self._runner = runner
        return runner

    async def acquire(self, runner: RunnerProcess) -> Slot:
        """A slot on ``runner``; waits while the child's own slots are all taken."""
        while True:
            if self._closed:
                raise RunnerError("the scheduler is stopping")
            slot = runner.acquire_slot()
            if slot is not None:
                return slot
            if not runner.accepting and runner.state is not RunnerState.STARTING:
                raise RunnerError("the runner stopped accepting work")
            if runner.state is RunnerState.STARTING:
                # the driver is replacing a crashed child: wait for the new one
                await self.runner()
                continue
            waiter = self._slot_freed
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(waiter.wait(), 0.5)

    def slot_done(self) -> None:
        """A prediction left its runner slot (wakes :meth:`acquire` waiters)."""
        self._slot_freed.set()
        self._slot_freed = asyncio.Event()

    def _transition(self, instance: Instance, state: InstanceState) -> None:
        self._observer.transition(instance, state)

    def stop_when_idle(self) -> None:
        """Stop the runner now if it has no work, else as soon as its work is done
        (no idle timeout); a later job starts a new one. Work already accepted runs."""
        self._stop_when_idle = True
        if self._reserved == 0 and self._runner is not None and self._starting is None:
            self._drop(self._runner)

    def _arm_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(self.options.idle_timeout, self._idle_expired)

    def _idle_expired(self) -> None:
        self._idle_timer = None
        runner = self._runner
        if runner is None or self._reserved:
            return
        log.info("runner for version %s idle: stopping it (scale to zero)", self.version_id)
        self._drop(runner)

    def _drop(self, runner: RunnerProcess) -> None:
        if self._runner is runner:
            self._runner = None
        task = asyncio.ensure_future(runner.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def cancel(self, prediction_id: str) -> bool:
        runner = self._runner
        return runner is not None and runner.cancel(prediction_id)

    def pids(self) -> list[int]:
        runner = self._runner
        return [runner.pid] if runner is not None and runner.pid is not None else []

    async def close(self) -> None:
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await self._starting
            self._starting = None
        if self._runner is not None:
            self._drop(self._runner)
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
