"""A runner pool: the instances of one pool key, scaled on its queue.

A pool is a version's shared pool (``version:<id>``) or a deployment's
(``deployment:<owner>/<name>``): the same code, with the min and max instances of its
:class:`~vendo.scheduler.instance.Release`. The scheduler asks it how many jobs it may
claim (:attr:`RunnerPool.free_slots`: the slots of its instances, starting ones
included, less the runs it holds), reserves one slot per claimed job, and binds each
run to an instance (:meth:`RunnerPool.bind`) whose runner it then waits for
(:meth:`RunnerPool.runner`).

:meth:`RunnerPool.autoscale` runs on every tick of the claim loop: target =
clamp(ceil((queued + running) / per-instance concurrency), min, max), starting
instances counted as capacity; it adds at most one instance per tick and stops
instances idle for the idle timeout down to the target (to zero when min is 0). A new
release (:meth:`RunnerPool.reconfigure`) drains the instances of the old one: they
finish the runs bound to them and stop. A crashed child is replaced by the driver
itself (:class:`~vendo.scheduler.process.RunnerProcess`); one that keeps crashing
becomes defunct and the pool drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from vendo.errors import RunnerError
from vendo.scheduler.instance import Instance, InstanceObserver, InstanceState, Release
from vendo.scheduler.placement import Placement, Placer
from vendo.scheduler.process import RunnerProcess, RunnerState, Slot

__all__ = ["NoCapacity", "PoolOptions", "RunnerPool"]

log = logging.getLogger(__name__)


class NoCapacity(RunnerError):
    """This machine cannot place another instance now: the run goes back to the queue."""


@dataclass(frozen=True)
class PoolOptions:
    idle_timeout: float = 300.0
    setup_timeout: float = 0.0
    cancel_grace: float = 10.0
    max_restarts: int = 3


class RunnerPool:
    """The instances of one pool, its concurrency slots and its autoscaler."""

    def __init__(
        self,
        key: str,
        release: Release,
        options: PoolOptions,
        *,
        placer: Placer | None = None,
        observer: InstanceObserver | None = None,
        on_runner_log: Callable[[str, str], None] | None = None,
    ) -> None:
        self.key = key
        self.release = release
        self.options = options
        self._placer = placer
        self._observer = observer
        self._on_runner_log = on_runner_log
        self.instances: list[Instance] = []
        # releases this pool ran, by version: a run claimed under an older one still
        # finishes on it
        self._releases: dict[str, Release] = {release.version_id: release}
        self._numbers = 0
        self._reserved = 0
        self._closing: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self.cold_starts = 0
        self.last_setup_logs = ""  # output of the last failed setup, for its predictions
        self.unplaced: str | None = None  # why the last instance could not be placed
        # its owner ran out of credit: no idle time, no standing instances (until work
        # accepted before comes and starts one)
        self._no_credit = False
        self._closed = False

    @property
    def version_id(self) -> str:
        return self.release.version_id

    @property
    def spec(self) -> object:
        return self.release.spec

    # --- slots -----------------------------------------------------------------------

    def _current(self) -> list[Instance]:
        return [i for i in self.instances if not i.draining]

    @property
    def slots(self) -> int:
        """Per-instance concurrency: what a child reported, else what cog.yaml asks."""
        for instance in self._current():
            if instance.runner.state in (RunnerState.READY, RunnerState.BUSY):
                return instance.runner.max_concurrency
        return max(1, self.release.spec.max_concurrency or 1)

    @property
    def capacity(self) -> int:
        """Slots of the current release's instances, starting ones included."""
        return self.slots * len(self._current())

    @property
    def reserved(self) -> int:
        return self._reserved

    @property
    def free_slots(self) -> int:
        return max(0, self.capacity - self._reserved)

    @property
    def warm(self) -> bool:
        return bool(self.instances)

    def reserve(self) -> None:
        """One claimed job holds one slot until :meth:`unreserve`."""
        self._reserved += 1

    def unreserve(self) -> None:
        """The claimed job no longer needs its slot (it ended, or was never claimed)."""
        self._reserved = max(0, self._reserved - 1)
        self.slot_done()

    # --- instances -------------------------------------------------------------------

    def ready(self) -> RunnerProcess | None:
        """A runner of the current release that takes work right now (no cold start, no
        setup to wait for, a free slot), else None: then :meth:`bind` and wait."""
        if self._closed:
            return None
        for instance in self._current():
            if instance.ready and instance.runner.busy_slots < instance.runner.max_concurrency:
                return instance.runner
        return None

    def instance_of(self, runner: RunnerProcess) -> Instance | None:
        for instance in self.instances:
            if instance.runner is runner:
                return instance
        return None

    def bind(self, version_id: str) -> Instance:
        """The instance a run of ``version_id`` will run on (bound to it until
        :meth:`unbind`): one of that version with room, ready ones first; else a new
        one while the release allows; else the least loaded."""
        if self._closed:
            raise RunnerError("the scheduler is stopping")
        mine = [i for i in self.instances if i.version_id == version_id and not _gone(i)]
        per = self.slots
        roomy = [i for i in mine if i.bound < per]
        if roomy:
            chosen = min(roomy, key=lambda i: (not i.ready, i.bound))
        else:
            release = self._releases.get(version_id)
            current = version_id == self.version_id
            if release is None:
                raise RunnerError(f"version {version_id} is not served by {self.key}")
            if mine and (not current or len(self._current()) >= self.release.max_instances):
                chosen = min(mine, key=lambda i: i.bound)
            elif current and self.release.max_instances <= 0:
                raise NoCapacity(f"{self.key} is disabled (max_instances is 0)")
            else:
                added = self._add(release, draining=not current)
                if isinstance(added, str):
                    raise NoCapacity(f"no capacity for {self.key}: {added}")
                chosen = added
        chosen.bind()
        return chosen

    def unbind(self, instance: Instance) -> None:
        instance.unbind()
        if instance.draining and not instance.bound:
            self._stop(instance, "its release was replaced")

    async def runner(self, instance: Instance) -> RunnerProcess:
        """``instance``'s runner once its setup has ended (READY, or raises RunnerError)."""
        if self._closed:
            raise RunnerError("the scheduler is stopping")
        runner = instance.runner
        if instance.started is not None:
            try:
                await asyncio.shield(instance.started)
            except OSError as exc:
                self._stop(instance, "it could not start")
                raise RunnerError(f"could not start the runner: {exc}") from exc
        timeout = self.options.setup_timeout or None
        try:
            state = await runner.wait_ready(timeout)
            if self._closed:
                raise RunnerError("the scheduler is stopping")
        except asyncio.TimeoutError:
            self._stop(instance, "setup timed out")
            raise RunnerError(
                f"setup did not finish within {self.options.setup_timeout:g} seconds"
            ) from None
        if state in (RunnerState.SETUP_FAILED, RunnerState.DEFUNCT):
            self.last_setup_logs = "".join(runner.setup.logs)
        if state is RunnerState.SETUP_FAILED:
            # Setup failures are deterministic: report them, drop the instance so a later
            # job (perhaps after the cause was fixed) tries a fresh one.
            self._stop(instance, "setup failed")
            raise RunnerError(f"setup failed: {runner.setup_error or 'unknown error'}")
        if state is RunnerState.DEFUNCT:
            self._stop(instance, "its runner keeps crashing")
            raise RunnerError(runner.setup_error or "the runner keeps crashing")
        if runner.state is RunnerState.STARTING:  # replaced after a crash: wait again
            return await self.runner(instance)
        return runner

    def _add(self, release: Release, *, draining: bool = False) -> Instance | str:
        """Start one more instance of ``release``; or why this machine cannot place it."""
        # work came (accepted before the credit ran out, or after it was topped up):
        # the credit watch says so again while the account stays at zero
        self._no_credit = False
        placement: Placement | None = None
        if self._placer is not None and release.hardware is not None:
            placed = self._placer.place(release.hardware)
            if isinstance(placed, str):
                if self.unplaced != placed:
                    log.warning("%s: cannot start another instance: %s", self.key, placed)
                self.unplaced = placed
                return placed
            placement = placed
        self.unplaced = None
        spec = release.spec
        if placement is not None:
            spec = replace(spec, env={**spec.env, **placement.env()})
        runner = RunnerProcess(
            spec,
            cancel_grace=self.options.cancel_grace,
            max_restarts=self.options.max_restarts,
            on_runner_log=self._on_runner_log,
        )
        self._numbers += 1
        instance_id = f"{self.key}#{self._numbers}"
        instance = Instance(instance_id, self.key, release, runner, placement, self._observer)
        instance.draining = draining
        self.instances.append(instance)
        self.cold_starts += 1
        log.info("%s: starting instance %s (release %s)", self.key, instance_id, release.number)
        instance.started = asyncio.ensure_future(runner.start())
        watch = asyncio.ensure_future(self._watch_setup(instance))
        self._closing.add(watch)
        watch.add_done_callback(self._closing.discard)
        return instance

    async def _watch_setup(self, instance: Instance) -> None:
        with contextlib.suppress(Exception):
            assert instance.started is not None
            await instance.started
            state = await instance.runner.wait_ready(self.options.setup_timeout or None)
            if state in (RunnerState.READY, RunnerState.BUSY):
                instance.set_up()
                self.slot_done()

    def _stop(self, instance: Instance, why: str) -> None:
        if instance not in self.instances:
            return
        self.instances.remove(instance)
        log.info("%s: stopping instance %s: %s", self.key, instance.id, why)
        instance.set_state(InstanceState.STOPPED)
        if instance.placement is not None and self._placer is not None:
            self._placer.release(instance.placement)
        task = asyncio.ensure_future(self._close(instance))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        self.slot_done()

    @staticmethod
    async def _close(instance: Instance) -> None:
        if instance.started is not None:
            with contextlib.suppress(Exception):
                await instance.started
        await instance.runner.close()

    # --- autoscaling -----------------------------------------------------------------

    def target(self, queued: int) -> int:
        """Instances wanted for ``queued`` jobs waiting besides the claimed ones."""
        release = self.release
        wanted = math.ceil((queued + self._reserved) / self.slots)
        low = 0 if self._no_credit else release.min_instances
        return max(low, min(release.max_instances, wanted))

    def autoscale(self, queued: int) -> None:
        """One tick of the autoscaler (see the module's doc)."""
        if self._closed:
            return
        for instance in list(self.instances):
            if _gone(instance):
                self._stop(instance, "its runner keeps crashing")
            elif instance.draining and not instance.bound:
                self._stop(instance, "its release was replaced")
        target = self.target(queued)
        current = self._current()
        if len(current) < target:
            self._add(self.release)
            return
        now = asyncio.get_running_loop().time()
        disabled = self.release.max_instances <= 0 or self._no_credit
        idle = sorted(
            (i for i in current if not i.bound and i.state is not InstanceState.SETTING_UP),
            key=lambda i: i.idle_since,
        )
        for instance in idle[: max(0, len(current) - target)]:
            if disabled or now - instance.idle_since >= self.options.idle_timeout:
                self._stop(instance, "idle (scale down)")

    def stop_when_idle(self) -> None:
        """The owner ran out of credit: instances stop as soon as they have no work (no
        idle timeout, no min_instances kept). Work already accepted still runs; a job
        queued before starts an instance again."""
        self._no_credit = True
        self.autoscale(0)

    def reconfigure(self, release: Release) -> None:
        """Serve ``release`` from now on. When it runs something else than the current
        one (version, hardware), the current instances drain: they finish the runs bound
        to them, take no new ones, and stop; the autoscaler starts the new release's."""
        old, self.release = self.release, release
        self._releases[release.version_id] = release
        if old.same_runner(release):
            for instance in self.instances:
                if instance.version_id == release.version_id:
                    instance.release = release
            return
        for instance in self.instances:
            if not instance.draining:
                instance.draining = True
                if not instance.bound:
                    self._stop(instance, "its release was replaced")
        self.slot_done()

    def knows(self, version_id: str) -> bool:
        """Whether runs of ``version_id`` can be bound here."""
        return version_id in self._releases

    # --- slots of a runner -----------------------------------------------------------

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
                await runner.wait_ready(self.options.setup_timeout or None)
                continue
            waiter = self._slot_freed
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(waiter.wait(), 0.5)

    def slot_done(self) -> None:
        """A prediction left its runner slot (wakes :meth:`acquire` waiters)."""
        self._slot_freed.set()
        self._slot_freed = asyncio.Event()

    def cancel(self, prediction_id: str) -> bool:
        return any(i.runner.cancel(prediction_id) for i in self.instances)

    def pids(self) -> list[int]:
        return [i.runner.pid for i in self.instances if i.runner.pid is not None]

    async def close(self) -> None:
        self._closed = True
        for instance in list(self.instances):
            self._stop(instance, "the scheduler is stopping")
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)


def _gone(instance: Instance) -> bool:
    return instance.runner.state is RunnerState.DEFUNCT
