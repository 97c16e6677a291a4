"""A run's runner events, the part both engines share: the platform's
(:mod:`vendo.scheduler.recording`) and ``serve-model``'s (:mod:`vendo.serving`).

- :class:`InOrder`: the events are handled in the order the child sent them, while an
  output's files are stored or uploaded;
- :func:`decide_end`: the terminal state a child's ``done`` decides.

Both engines then say what they do with each event: the platform writes it and puts it
on its bus, serve-model builds Cog's prediction object from it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

from vendo.runner.protocol import RunnerEvent, has_files
from vendo.scheduler.process import WORKER_EXITED
from vendo.status import TERMINAL, PredictionStatus

__all__ = ["DROP", "InOrder", "decide_end"]

log = logging.getLogger(__name__)

#: What a conversion answers for an output that must not be handled (its file failed).
DROP: Any = object()

Handle = Callable[[RunnerEvent], None]
Convert = Callable[[Any], Awaitable[Any]]
Spawn = Callable[[Coroutine[Any, Any, None]], None]


class InOrder:
    """One run's runner events, handled in the order they came.

    Most events are handled at once, in the runner socket's callback: no task. An
    ``output`` that holds files is converted in a task (``convert``: stored, uploaded,
    or :data:`DROP`), and the events that arrive meanwhile wait their turn.
    """

    __slots__ = ("_backlog", "_convert", "_handle", "_spawn", "busy", "label")

    def __init__(self, handle: Handle, convert: Convert, spawn: Spawn, label: str) -> None:
        self._handle = handle
        self._convert = convert
        self._spawn = spawn
        self.label = label  # the prediction id, for the log
        self._backlog: deque[RunnerEvent] = deque()
        #: set while an output's files are converted (and the backlog drained)
        self.busy: asyncio.Event | None = None

    def push(self, received: dict[str, Any]) -> None:
        """The runner's ``on_event``: one message, straight from its socket."""
        message = cast(RunnerEvent, received)
        if self.busy is not None:
            self._backlog.append(message)
        elif message.get("type") == "output" and has_files(message.get("value")):
            self.busy = asyncio.Event()
            self._spawn(self._drain(message))
        else:
            self._safely(message)

    async def settled(self) -> None:
        """Wait until every event pushed so far is handled."""
        while self.busy is not None:
            await self.busy.wait()

    def _safely(self, message: RunnerEvent) -> None:
        try:
            self._handle(message)
        except Exception:
            log.exception("prediction %s: could not handle a runner event", self.label)

    async def _drain(self, message: RunnerEvent) -> None:
        try:
            while True:
                if message.get("type") == "output" and has_files(message.get("value")):
                    value = await self._convert(message.get("value"))
                    if value is not DROP:
                        self._safely({**message, "value": value})
                else:
                    self._safely(message)
                if not self._backlog:
                    break
                message = self._backlog.popleft()
        finally:
            busy, self.busy = self.busy, None
            if busy is not None:
                busy.set()


def decide_end(
    result: RunnerEvent | dict[str, Any], *, canceled: bool = False
) -> tuple[PredictionStatus, str | None]:
    """The terminal status and error of a run whose child answered ``result`` (its
    ``done``, or one the parent made): an unknown status is a failure, a failure always
    says why, and a run canceled here ends ``canceled`` even when the model swallowed
    the cancel (unless its child died first)."""
    raw = result.get("status") or PredictionStatus.FAILED
    status = PredictionStatus(raw) if raw in TERMINAL else PredictionStatus.FAILED
    error = result.get("error")
    if canceled and error != WORKER_EXITED:
        status = PredictionStatus.CANCELED
    if status is PredictionStatus.FAILED:
        return status, str(error) if error else "prediction failed"
    return status, None
