"""Predictions of ``vendo serve-model``: the run flow of one kind of work.

A :class:`~vendo.serving.records.PredictionRecord` is the Cog prediction object being
built from the runner's events. :class:`PredictionService` runs one kind of work
(``predictions`` or ``trainings``) on one :class:`~vendo.scheduler.process.RunnerProcess`:
it validates, downloads input files, starts the run in a reserved slot, turns output
files into URLs, feeds webhooks and SSE subscribers, and keeps finished results for a
retention window (idempotent PUT).

What it shares with the platform's run lifecycle: the runner driver, the order in which
runner events are handled around output files and the terminal state a ``done``
decides (:mod:`vendo.scheduler.events`), and the vocabulary of a prediction's end
(:mod:`vendo.status`: its status, terminal events, final metrics).

The hot path (a sync prediction without files or webhooks) creates no task or thread
of its own: runner events update the record in the socket callback, and ``done``
resolves the future the HTTP handler awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import time
from collections import OrderedDict, deque
from collections.abc import Coroutine, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from vendo.errors import VendoError
from vendo.runner.protocol import RunnerEvent, has_files
from vendo.scheduler.events import DROP, InOrder, decide_end
from vendo.scheduler.process import RunnerProcess, Slot
from vendo.serving.inputs import InputSchema, fetch_files, needs_fetch
from vendo.serving.outputs import OutputFiles, OutputUploadError
from vendo.serving.records import FetchLimits, PredictionRecord
from vendo.serving.stream import EventStream
from vendo.status import WEBHOOK_EVENTS, PredictionStatus, final_metrics, terminal_events
from vendo.webhooks.sender import PredictionWebhook, WebhookSender

__all__ = ["PredictionService"]

log = logging.getLogger(__name__)

# The terminal events (vendo.status.terminal_events) in Cog's SSE words: ``done`` is
# ``completed`` with the final prediction, which carries the ``error`` too.
_SSE_END = {"done": "completed"}


def _apply_metric(metrics: dict[str, Any], name: str, value: Any, mode: str) -> None:
    if mode == "incr":
        metrics[name] = metrics.get(name, 0) + value
    elif mode == "append":
        current = metrics.get(name)
        metrics[name] = [*current, value] if isinstance(current, list) else [value]
    elif value is None:
        metrics.pop(name, None)
    else:
        metrics[name] = value


class PredictionService:
    """Runs one kind of work (``predictions`` or ``trainings``) on one runner."""

    def __init__(
        self,
        runner: RunnerProcess,
        *,
        kind: str,
        work_dir: Path,
        outputs: OutputFiles,
        webhooks: WebhookSender,
        http: httpx.AsyncClient,
        fetch_limits: FetchLimits = FetchLimits(),
        stream_capacity: int = 1024,
        throttle_interval: float = 0.5,
        retention: float = 600.0,
        max_retained: int = 10_000,
    ) -> None:
        self.runner = runner
        self.kind = kind
        self.work_dir = work_dir
        self.outputs = outputs
        self.webhooks = webhooks
        self.http = http
        self.fetch_limits = fetch_limits
        self.stream_capacity = stream_capacity
        self.throttle_interval = throttle_interval
        self.retention = retention
        self.max_retained = max_retained
        # finished SSE-created predictions whose event history is kept for reconnects
        self._replayable: deque[EventStream] = deque()
        self.max_replayable = 100
        self.records: dict[str, PredictionRecord] = {}
        self._finished: OrderedDict[str, PredictionRecord] = OrderedDict()
        self._inputs: tuple[int, InputSchema] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- inputs ------------------------------------------------------------------------

    @property
    def inputs(self) -> InputSchema:
        """The input schema of the runner's document, read again when it changes."""
        doc = self.runner.openapi or {}
        if self._inputs is None or self._inputs[0] != id(doc):
            self._inputs = (id(doc), InputSchema.of(doc, self.kind))
        return self._inputs[1]

    @property
    def streaming(self) -> bool:
        return self.inputs.streaming

    def validate(self, payload: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(validated input, input as echoed with secrets masked); raises
        InputValidationError with Cog's ``detail`` entries."""
        return self.inputs.validate(payload)

    # --- records -----------------------------------------------------------------------

    def get(self, prediction_id: str) -> PredictionRecord | None:
        self._prune()
        return self.records.get(prediction_id)

    def _prune(self) -> None:
        horizon = time.monotonic() - self.retention
        while self._finished:
            pid, record = next(iter(self._finished.items()))
            if record.finished_at > horizon and len(self._finished) <= self.max_retained:
                break
            self._finished.popitem(last=False)
            if self.records.get(pid) is record:
                del self.records[pid]

    # --- running -----------------------------------------------------------------------

    def start(
        self,
        slot: Slot,
        prediction_id: str,
        validated: dict[str, Any],
        masked: dict[str, Any],
        *,
        context: Mapping[str, str] | None = None,
        webhook: str | None = None,
        webhook_events: frozenset[str] | None = None,
        webhook_headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> PredictionRecord:
        """Create the record and start the run in ``slot`` (which it now owns)."""
        self._prune()
        record = PredictionRecord(prediction_id, validated, masked)
        record.context = dict(context or {})
        if prediction_id in self.records:
            self._finished.pop(prediction_id, None)
        self.records[prediction_id] = record
        if stream or self.streaming:
            record.stream = EventStream(self.stream_capacity)
            record.sse_created = stream
        if webhook:
            record.webhook = self._webhook(record, webhook, webhook_events, webhook_headers)
        files = self.inputs.files
        if needs_fetch(validated, files):
            self._spawn(self._fetch_then_run(slot, record, files))
        else:
            self._run(slot, record, validated)
        return record

    def _webhook(
        self,
        record: PredictionRecord,
        url: str,
        events: frozenset[str] | None,
        headers: Mapping[str, str] | None,
    ) -> PredictionWebhook:
        kwargs: dict[str, Any] = {} if events is None else {"events": events}
        return PredictionWebhook(
            self.webhooks,
            url,
            record.to_dict,
            throttle_interval=self.throttle_interval,
            headers=headers,
            **kwargs,
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch_then_run(
        self, slot: Slot, record: PredictionRecord, files: frozenset[str]
    ) -> None:
        record.work_dir = self.work_dir / record.id
        try:
            run_input = await fetch_files(
                record.input or {}, files, record.work_dir, self.fetch_limits
            )
        except (VendoError, OSError) as exc:
            slot.release()
            detail = exc.detail if isinstance(exc, VendoError) else str(exc)
            self._finalize(record, PredictionStatus.FAILED, f"input download failed: {detail}")
            return
        if record.cancel_requested:
            slot.release()
            self._finalize(record, PredictionStatus.CANCELED)
            return
        self._run(slot, record, run_input)

    def _run(self, slot: Slot, record: PredictionRecord, run_input: dict[str, Any]) -> None:
        handle = functools.partial(self._on_event, record)
        convert = functools.partial(self._converted, record)
        events = InOrder(handle, convert, self._spawn, record.id)
        self.runner.predict(
            slot, record.id, run_input, context=record.context, on_event=events.push
        )

    def cancel(self, prediction_id: str) -> bool:
        record = self.records.get(prediction_id)
        if record is None:
            return False
        if not record.done:
            record.cancel_requested = True
            self.runner.cancel(prediction_id)
        return True

    # --- events ------------------------------------------------------------------------

    def _on_event(self, record: PredictionRecord, message: RunnerEvent) -> None:
        kind = message["type"]
        if kind == "log":
            data = message.get("data", "")
            record.logs.append(data)
            if record.stream is not None:
                record.stream.publish("log", {"source": message.get("source"), "data": data})
            self._notify(record, "logs")
        elif kind == "output":
            if record.upload_error is None:  # a failed upload ended the outputs
                self._apply_output(record, message.get("value"), message.get("index"))
        elif kind == "started":
            # Reported as the prediction is handed over, inside start(): a loop turn
            # later, so that its caller first answers the prediction as accepted
            # (``starting``: Cog's 202). The child's own events come later still.
            asyncio.get_running_loop().call_soon(self._started, record)
        elif kind == "metric":
            name, value = message.get("name", ""), message.get("value")
            mode = message.get("mode", "replace")
            _apply_metric(record.metrics, name, value, mode)
            if record.stream is not None:
                record.stream.publish("metric", {"name": name, "value": value, "mode": mode})
        elif kind == "done":
            self._on_done(record, message)

    def _started(self, record: PredictionRecord) -> None:
        if record.done:
            return
        record.status = PredictionStatus.PROCESSING
        record.started_at = datetime.now(timezone.utc)
        if record.stream is not None:
            record.stream.publish("start", {"id": record.id, "status": record.status})
        self._notify(record, "start")

    @staticmethod
    def _notify(record: PredictionRecord, event: str) -> None:
        """Tell the webhook of ``event`` (the bus's name: vendo.status.WEBHOOK_EVENTS)."""
        if record.webhook is not None:
            record.webhook.notify(WEBHOOK_EVENTS[event])

    async def _converted(self, record: PredictionRecord, value: Any) -> Any:
        """An output's files as URLs; a failed upload fails the prediction."""
        try:
            return await self.outputs.convert(value)
        except OutputUploadError as exc:
            if record.upload_error is None:
                record.upload_error = str(exc)
            return DROP

    def _apply_output(self, record: PredictionRecord, value: Any, index: Any) -> None:
        if record.outputs is None:
            record.outputs = []
        record.outputs.append(value)
        if record.stream is not None:
            position = index if isinstance(index, int) else len(record.outputs) - 1
            record.stream.publish("output", {"chunk": value, "index": position})
        self._notify(record, "output")

    def _on_done(self, record: PredictionRecord, message: RunnerEvent) -> None:
        output = message.get("output")
        if not has_files(output):
            self._finish_done(record, message, output)
            return

        async def complete() -> None:
            converted = await self._converted(record, output)
            self._finish_done(record, message, None if converted is DROP else converted)

        self._spawn(complete())

    def _finish_done(self, record: PredictionRecord, message: RunnerEvent, output: Any) -> None:
        status, error = decide_end(message, canceled=record.cancel_requested)
        if record.upload_error is not None:
            status, error = PredictionStatus.FAILED, record.upload_error
        record.metrics = final_metrics(
            record.metrics,
            message.get("metrics"),
            created_at=None,  # Cog's metrics have no total_time
            started_at=record.started_at,
            at=datetime.now(timezone.utc),
        )
        if record.outputs is None:
            record.output = [] if output is None and self.inputs.iterator_output else output
        self._finalize(record, status, error)

    def _finalize(
        self, record: PredictionRecord, status: PredictionStatus, error: str | None = None
    ) -> None:
        if record.done:
            return
        record.status = status
        record.error = error
        record.completed_at = datetime.now(timezone.utc)
        if record.started_at is None and status != PredictionStatus.CANCELED:
            record.started_at = record.completed_at
        record.finished_at = time.monotonic()
        self._finished[record.id] = record
        final = record.seal()
        for event, _ in terminal_events(status, error):
            if record.stream is not None and event in _SSE_END:
                record.stream.publish(_SSE_END[event], final, final=True)
                self._keep_history(record)
            if event in WEBHOOK_EVENTS:
                self._notify(record, event)
        if record.work_dir is not None:
            shutil.rmtree(record.work_dir, ignore_errors=True)
        if not record.finished.done():
            record.finished.set_result(None)

    def _keep_history(self, record: PredictionRecord) -> None:
        """Bound the memory that finished event histories hold: only the latest
        SSE-created predictions keep theirs for a reconnecting reader."""
        stream = record.stream
        assert stream is not None
        if not record.sse_created:
            stream.drop_history()
            return
        self._replayable.append(stream)
        while len(self._replayable) > self.max_replayable:
            self._replayable.popleft().drop_history()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        hooks = [r.webhook.wait_closed() for r in self.records.values() if r.webhook is not None]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*hooks, return_exceptions=True), 5.0)
