"""One prediction while this scheduler runs it: its phase and what it gathered so far.

A run moves through :class:`RunPhase` in one direction only::

    CLAIMED -> SENT -> STARTED -> PROCESSING -> ENDED -> RECORDED
        \\-> REQUEUED (the server stops before it started)
        \\-> ENDED (canceled, past its deadline, or its runner could not start)

The phase is the state machine; everything else on :class:`Run` is data (what the
model said, what is queued for the store).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vendo.queue import Claimed, Job
from vendo.scheduler.events import InOrder
from vendo.scheduler.instance import Instance
from vendo.scheduler.pool import RunnerPool
from vendo.scheduler.process import RunnerProcess, Slot

__all__ = ["OUTCOME_KEEP", "Outcomes", "Run", "RunPhase"]


class RunPhase(enum.IntEnum):
    """Where a run is in its life; phases only ever move forward."""

    CLAIMED = 1  # its job is ours (a deferred run: not even written); no runner yet
    SENT = 2  # handed to a runner in a slot; the model has not started
    STARTED = 3  # the model runs (``started_at`` is set); ``processing`` not yet written
    PROCESSING = 4  # ``processing`` is written, or on its way to the store
    ENDED = 5  # its terminal state is decided; its slot is free; the write is on its way
    RECORDED = 6  # the terminal state is written and its job deleted
    REQUEUED = 7  # the server stops before it started: its job goes back to the queue

    @property
    def holds_slot(self) -> bool:
        """Whether the run still holds the pool slot reserved when it was claimed."""
        return self < RunPhase.ENDED or self is RunPhase.REQUEUED


@dataclass(eq=False)
class Run:
    """One claimed job while it runs here."""

    job: Job
    pool: RunnerPool
    claimed: Claimed
    phase: RunPhase = RunPhase.CLAIMED
    runner: RunnerProcess | None = None
    instance: Instance | None = None  # the pool's instance it is bound to
    cancel_reason: str | None = None
    canceled: asyncio.Event | None = None  # made when first needed (most runs never)
    started_at: datetime | None = None
    start_timer: asyncio.TimerHandle | None = None
    logs: list[str] = field(default_factory=list)  # not yet handed to the writer
    all_logs: list[str] = field(default_factory=list)  # the whole text, for the outcome
    # The queued write that will carry the logs (outputs) arriving until its batch starts.
    logs_write: asyncio.Future[Any] | None = None
    outputs: list[Any] = field(default_factory=list)  # every iterator item so far
    outputs_written: int = 0
    outputs_write: asyncio.Future[Any] | None = None
    # Its runner events, handled in order around output files (made when it is sent).
    events: InOrder | None = None
    # A deferred run (see vendo.scheduler.sync) keeps its prediction here, unwritten,
    # until it ends or someone else may learn its id; ``written`` is the insert on its way.
    unwritten: dict[str, Any] | None = None
    count_model: int | None = None
    written: asyncio.Future[Any] | None = None
    ended: asyncio.Future[None] | None = None  # a deferred run's end, for its waiter
    # where its input files were fetched from the bucket (scaled mode), removed at its end
    input_folder: Path | None = None

    @property
    def prediction_id(self) -> str:
        return self.job.prediction_id

    @property
    def ordered(self) -> bool:
        """With a webhook the relay reads the row on each event: publish after the write."""
        return bool(self.claimed.webhook)

    def advance(self, phase: RunPhase) -> None:
        if phase > self.phase:
            self.phase = phase

    async def unless_canceled(self, awaitable: Any) -> Any:
        """Await ``awaitable`` (a cold start, a free slot) unless a cancel comes first;
        then return None and let the awaited work go on for the next job."""
        if self.canceled is None:
            self.canceled = asyncio.Event()
        task = asyncio.ensure_future(awaitable)
        waiter = asyncio.ensure_future(self.canceled.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            return task.result()
        task.add_done_callback(_release_unused_slot)
        return None


def _release_unused_slot(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is None and isinstance(task.result(), Slot):
        task.result().release()


OUTCOME_KEEP = 60.0  # seconds an outcome is remembered after its run ended
OUTCOME_MAX = 10_000


class Outcomes:
    """How recent runs ended, as written to the store (see
    :meth:`vendo.scheduler.Scheduler.outcome`), for :data:`OUTCOME_KEEP` seconds."""

    def __init__(self) -> None:
        self._outcomes: dict[str, dict[str, Any]] = {}
        self._order: deque[tuple[float, str]] = deque()

    def get(self, prediction_id: str) -> dict[str, Any] | None:
        return self._outcomes.get(prediction_id)

    def remember(self, prediction_id: str, outcome: dict[str, Any]) -> None:
        now = time.monotonic()
        order = self._order
        while order and (now - order[0][0] > OUTCOME_KEEP or len(order) >= OUTCOME_MAX):
            self._outcomes.pop(order.popleft()[1], None)
        self._outcomes[prediction_id] = outcome
        order.append((now, prediction_id))
