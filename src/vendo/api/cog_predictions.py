"""Predictions of ``vendo serve-model``: the run flow.

A :class:`~vendo.api.cog_records.PredictionRecord` is the Cog prediction object being
built from the runner's events. :class:`PredictionService` runs one kind of work (``predictions`` or
``trainings``) on one :class:`~vendo.scheduler.process.RunnerProcess`: it validates,
downloads input files, starts the run in a reserved slot, turns output files into URLs,
feeds webhooks and SSE subscribers, and keeps finished results for a retention window
(idempotent PUT).

The hot path (a sync prediction without files or webhooks) creates no task or thread
of its own: runner events update the record in the socket callback, and ``done``
resolves the future the HTTP handler awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from vendo.api.cog_outputs import OutputFiles, OutputUploadError, has_files
from vendo.api.cog_records import (
    SECRET_MASK,
    EventStream,
    FetchLimits,
    PredictionRecord,
    new_prediction_id,
    now_iso,
)
from vendo.errors import VendoError
from vendo.files.fetch import fetch_input, is_fetchable
from vendo.scheduler.process import WORKER_EXITED, RunnerProcess, Slot
from vendo.schema import InputValidationError, validate_input
from vendo.webhooks.sender import PredictionWebhook, WebhookSender

__all__ = [
    "EventStream",
    "FetchLimits",
    "PredictionRecord",
    "PredictionService",
    "new_prediction_id",
]

log = logging.getLogger(__name__)


def _secret_names(schema: Mapping[str, Any]) -> frozenset[str]:
    props = schema.get("properties", {})
    return frozenset(
        name
        for name, prop in props.items()
        if prop.get("x-cog-secret") or prop.get("format") == "password"
    )


def _is_uri(prop: Mapping[str, Any]) -> bool:
    if prop.get("format") == "uri":
        return True
    if prop.get("type") == "array":
        return _is_uri(prop.get("items", {}))
    return any(_is_uri(arm) for arm in prop.get("anyOf", ()))


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
        self._schema_cache: tuple[int, Any] | None = None
        self.iterator_output = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- schema ------------------------------------------------------------------------

    def _schema(self) -> tuple[dict[str, Any], dict[str, Any], frozenset[str], frozenset[str]]:
        """(Input schema, components, secret names, file input names), cached per document."""
        doc = self.runner.openapi or {}
        if self._schema_cache is not None and self._schema_cache[0] == id(doc):
            cached: Any = self._schema_cache[1]
            return cached
        components = doc.get("components", {}).get("schemas", {})
        name = "TrainingInput" if self.kind == "trainings" else "Input"
        schema = components.get(name) or {"type": "object", "properties": {}}
        output = components.get("TrainingOutput" if self.kind == "trainings" else "Output", {})
        self.iterator_output = output.get("x-cog-array-type") == "iterator"
        props = schema.get("properties", {})
        files = frozenset(n for n, p in props.items() if _is_uri(p))
        value = (schema, components, _secret_names(schema), files)
        self._schema_cache = (id(doc), value)
        return value

    @property
    def streaming(self) -> bool:
        if self.kind != "predictions":
            return False
        doc = self.runner.openapi or {}
        post = doc.get("paths", {}).get("/predictions", {}).get("post", {})
        return bool(post.get("x-cog-streaming"))

    def validate(self, payload: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(validated input, input as echoed with secrets masked); raises
        InputValidationError with Cog's ``detail`` entries."""
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise InputValidationError(
                [
                    {
                        "loc": ["body", "input"],
                        "msg": "Input should be an object",
                        "type": "value_error",
                    }
                ]
            )
        schema, components, secret_names, _ = self._schema()
        validated = validate_input(schema, payload, components)
        masked = dict(validated)
        for name in secret_names:
            if name in masked and masked[name] is not None:
                masked[name] = SECRET_MASK
        # Ignored, but named to the runner (valued null): it warns about each in the
        # prediction's logs, with the closest known input.
        return {**validated, **dict.fromkeys(validated.unknown)}, masked

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
        old = self.records.get(prediction_id)
        if old is not None:
            self._finished.pop(prediction_id, None)
        self.records[prediction_id] = record
        if stream or self.streaming:
            record.stream = EventStream(self.stream_capacity)
            record.sse_created = stream
        if webhook:
            kwargs: dict[str, Any] = {}
            if webhook_events is not None:
                kwargs["events"] = webhook_events
            record.webhook = PredictionWebhook(
                self.webhooks,
                webhook,
                record.to_dict,
                throttle_interval=self.throttle_interval,
                headers=webhook_headers,
                **kwargs,
            )
        _, _, _, file_inputs = self._schema()
        needs_fetch = any(is_fetchable(validated.get(name)) for name in file_inputs) or any(
            isinstance(validated.get(name), list) and any(is_fetchable(v) for v in validated[name])
            for name in file_inputs
        )
        if needs_fetch:
            self._spawn(self._fetch_then_run(slot, record, file_inputs))
        else:
            self._run(slot, record, validated)
        return record

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch_then_run(
        self, slot: Slot, record: PredictionRecord, file_inputs: frozenset[str]
    ) -> None:
        folder = self.work_dir / record.id
        record.work_dir = folder
        limits = self.fetch_limits

        async def fetch(value: Any) -> Any:
            if not is_fetchable(value):
                return value
            # fetch_input's own client connects only where the address policy allows
            path = await fetch_input(
                value,
                folder,
                max_bytes=limits.max_bytes,
                max_data_uri_bytes=limits.max_data_uri_bytes,
                timeout=limits.timeout,
                allow_private=limits.allow_private,
            )
            return str(path)

        run_input = dict(record.input or {})
        try:
            for name in file_inputs:
                value = run_input.get(name)
                if isinstance(value, list):
                    run_input[name] = [await fetch(v) for v in value]
                elif value is not None:
                    run_input[name] = await fetch(value)
        except (VendoError, OSError) as exc:
            slot.release()
            detail = exc.detail if isinstance(exc, VendoError) else str(exc)
            self._finalize(record, "failed", error=f"input download failed: {detail}")
            return
        if record.cancel_requested:
            slot.release()
            self._finalize(record, "canceled")
            return
        self._run(slot, record, run_input)

    def _run(self, slot: Slot, record: PredictionRecord, run_input: dict[str, Any]) -> None:
        self.runner.predict(
            slot,
            record.id,
            run_input,
            context=record.context,
            on_event=lambda message: self._on_event(record, message),
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

    def _on_event(self, record: PredictionRecord, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "log":
            data = message.get("data", "")
            record.logs.append(data)
            if record.stream is not None:
                record.stream.publish("log", {"source": message.get("source"), "data": data})
            if record.webhook is not None:
                record.webhook.notify("logs")
        elif kind == "output":
            self._on_output(record, message)
        elif kind == "started":
            record.status = "processing"
            record.started_at = now_iso()
            if record.stream is not None:
                record.stream.publish("start", {"id": record.id, "status": record.status})
            if record.webhook is not None:
                record.webhook.notify("start")
        elif kind == "metric":
            name, value = message.get("name", ""), message.get("value")
            mode = message.get("mode", "replace")
            _apply_metric(record.metrics, name, value, mode)
            if record.stream is not None:
                record.stream.publish("metric", {"name": name, "value": value, "mode": mode})
        elif kind == "done":
            self._on_done(record, message)

    # Outputs are applied in order. Most are plain JSON and are applied at once; one
    # that holds files is converted in a task, and everything after it waits its turn.
    def _on_output(self, record: PredictionRecord, message: dict[str, Any]) -> None:
        value = message.get("value")
        index = message.get("index")
        chain = record.chain
        if chain is None and not has_files(value):
            self._apply_output(record, value, index)
            return

        async def step(previous: asyncio.Task[Any] | None) -> None:
            if previous is not None:
                await previous
            converted = await self.outputs.convert(value)
            self._apply_output(record, converted, index)

        record.chain = asyncio.get_running_loop().create_task(step(chain))

    def _apply_output(self, record: PredictionRecord, value: Any, index: Any) -> None:
        if record.outputs is None:
            record.outputs = []
        record.outputs.append(value)
        if record.stream is not None:
            position = index if isinstance(index, int) else len(record.outputs) - 1
            record.stream.publish("output", {"chunk": value, "index": position})
        if record.webhook is not None:
            record.webhook.notify("output")

    def _on_done(self, record: PredictionRecord, message: dict[str, Any]) -> None:
        chain = record.chain
        output = message.get("output")
        if chain is None and not has_files(output):
            self._finish_done(record, message, output)
            return

        async def complete() -> None:
            try:
                if chain is not None:
                    await chain
                converted = await self.outputs.convert(output)
            except OutputUploadError as exc:
                self._finish_done(record, message, None, upload_error=str(exc))
            else:
                self._finish_done(record, message, converted)

        self._spawn(complete())

    def _finish_done(
        self,
        record: PredictionRecord,
        message: dict[str, Any],
        output: Any,
        upload_error: str | None = None,
    ) -> None:
        status = message.get("status") or "failed"
        error = message.get("error")
        if record.cancel_requested and status != "canceled" and error != WORKER_EXITED:
            # canceled means canceled, even when the model swallowed the exception
            status, error = "canceled", None
        if upload_error is not None:
            status, error = "failed", upload_error
        metrics = message.get("metrics")
        if metrics:
            record.metrics.update(metrics)
        if record.outputs is None:
            record.output = [] if output is None and self.iterator_output else output
        self._finalize(record, status, error=error)

    def _finalize(self, record: PredictionRecord, status: str, error: str | None = None) -> None:
        if record.done:
            return
        record.status = status
        record.error = error
        record.completed_at = now_iso()
        if record.started_at is None and status != "canceled":
            record.started_at = record.completed_at
        record.finished_at = time.monotonic()
        self._finished[record.id] = record
        final = record.seal()
        if record.stream is not None:
            record.stream.publish("completed", final, final=True)
            self._keep_history(record)
        if record.webhook is not None:
            record.webhook.notify("completed")
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
