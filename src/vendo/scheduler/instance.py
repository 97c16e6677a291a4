"""One instance of a pool: a runner child of one release, and its state transitions.

An instance is what a deployment's ``min_instances``/``max_instances`` count, what the
autoscaler adds and stops, and what metrics (``vendo_instances{pool,state}``) and
metering observe. Every state change goes to the pool's observer as an
:class:`InstanceEvent`: the one place the transitions are reported.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass

from vendo.hardware import Sku
from vendo.scheduler.placement import Placement
from vendo.scheduler.process import RunnerProcess
from vendo.scheduler.runner_spec import RunnerSpec

__all__ = ["Instance", "InstanceEvent", "InstanceObserver", "InstanceState", "Release"]


class InstanceState(enum.StrEnum):
    """Where an instance is in its life (Replicate's web metrics name them starting,
    idle and processing)."""

    SETTING_UP = "setting_up"  # started, setup() not yet ended
    IDLE = "idle"  # ready, no prediction bound to it
    ACTIVE = "active"  # ready, running (or about to run) predictions
    STOPPED = "stopped"  # gone: idle past the timeout, drained, failed or shut down


@dataclass(frozen=True)
class InstanceEvent:
    """A state transition of one instance, with what metering bills it by."""

    instance_id: str
    pool: str  # the pool key: version:<id>, deployment:<owner>/<name> or train:<id>
    sku: str
    owner: str  # who pays: the deployment's or the model's owner
    state: InstanceState
    release: Release


InstanceObserver = Callable[[InstanceEvent], None]


@dataclass(frozen=True)
class Release:
    """What a pool runs: a version on a SKU, between min and max instances."""

    version_id: str
    spec: RunnerSpec
    min_instances: int = 0
    max_instances: int = 1
    hardware: Sku | None = None  # None: not placed (no affinity, limits or GPUs given)
    owner: str = ""
    number: int = 0  # the deployment's release number (0: a version's shared pool)
    # what usage is billed by (vendo.store.usage): the paying account, the model
    # ("owner/name"), the deployment ("owner/name", None for a version's pool), and
    # whether this is a public model's shared pool (its runs are billed, not its time)
    owner_id: int = 0
    model: str = ""
    deployment: str | None = None
    shared: bool = False

    @property
    def sku(self) -> str:
        return self.hardware.sku if self.hardware is not None else "cpu"

    def same_runner(self, other: Release) -> bool:
        """Whether instances of ``other`` can serve this release (only the scale moved)."""
        mine = (self.version_id, self.spec, self.hardware)
        return mine == (other.version_id, other.spec, other.hardware)


class Instance:
    """A runner child of one release, with the runs bound to it."""

    def __init__(
        self,
        instance_id: str,
        pool: str,
        release: Release,
        runner: RunnerProcess,
        placement: Placement | None,
        observer: InstanceObserver | None,
    ) -> None:
        self.id = instance_id
        self.pool = pool
        self.release = release
        self.runner = runner
        self.placement = placement
        self.bound = 0  # runs that will run (or run) here and have not ended
        self.draining = False  # of an older release: finishes its runs, takes no new
        self.state = InstanceState.SETTING_UP
        self.idle_since = asyncio.get_running_loop().time()
        self.started: asyncio.Task[None] | None = None  # the child's spawn
        self._observer = observer
        self._events: dict[InstanceState, InstanceEvent] = {}
        self._report()

    @property
    def version_id(self) -> str:
        return self.release.version_id

    @property
    def ready(self) -> bool:
        return self.state in (InstanceState.IDLE, InstanceState.ACTIVE) and self.runner.accepting

    def set_state(self, state: InstanceState) -> None:
        if state is self.state or self.state is InstanceState.STOPPED:
            return
        self.state = state
        self._report()

    def set_up(self) -> None:
        """Setup ended well: active when runs wait for it, else idle."""
        if self.state is InstanceState.SETTING_UP:
            if not self.bound:
                self.idle_since = asyncio.get_running_loop().time()
            self.set_state(InstanceState.ACTIVE if self.bound else InstanceState.IDLE)

    def settle(self) -> None:
        """After setup ended or a run was bound or unbound: idle or active."""
        if self.state in (InstanceState.SETTING_UP, InstanceState.STOPPED):
            return
        if self.bound:
            self.set_state(InstanceState.ACTIVE)
        else:
            self.idle_since = asyncio.get_running_loop().time()
            self.set_state(InstanceState.IDLE)

    def bind(self) -> None:
        self.bound += 1
        self.settle()

    def unbind(self) -> None:
        self.bound = max(0, self.bound - 1)
        self.settle()

    def _report(self) -> None:
        if self._observer is None:
            return
        # Events are immutable: each prediction flips an instance busy and idle again,
        # and the same two events serve every time (until its release changes).
        release, state = self.release, self.state
        event = self._events.get(state)
        if event is None or event.release is not release:
            event = InstanceEvent(self.id, self.pool, release.sku, release.owner, state, release)
            self._events[state] = event
        self._observer(event)
