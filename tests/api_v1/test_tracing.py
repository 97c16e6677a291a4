"""OpenTelemetry traces (the optional ``otel`` extra): with
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, ``vendo serve`` exports one trace per prediction
request, API -> queue -> runner, over OTLP/HTTP to a receiver of the test's own (the
collector's side of the protocol: protobuf on ``/v1/traces``)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_v1_support import LiveServer, record_sleeper

from support import Receiver, until

trace_service = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="the otel extra: pip install 'vendo[otel]'",
)

TOKEN = "trace-admin-token"


def _spans(receiver: Receiver) -> list[Any]:
    spans = []
    for request in receiver.received():
        assert request["path"] == "/v1/traces"
        body = request["body"]
        if request["headers"].get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        message = trace_service.ExportTraceServiceRequest()
        message.ParseFromString(body)
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                spans.extend(scope.spans)
    return spans


def test_a_prediction_is_one_trace_from_request_to_runner(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # export within 50 ms
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    versions = record_sleeper(data_dir, TOKEN)
    live = LiveServer(data_dir, tmp_path / "server.log", TOKEN)
    live.start()
    try:
        with httpx.Client(base_url=live.url, timeout=30) as http:
            r = http.post(
                "/v1/predictions",
                json={"version": versions["a"], "input": {"text": "traced"}},
                headers={"Authorization": f"Bearer {TOKEN}", "Prefer": "wait"},
            )
            assert r.json()["status"] == "succeeded"
            pid = r.json()["id"]

        def complete() -> bool:
            names = {s.name for s in _spans(receiver)}
            return {"POST /v1/predictions", "prediction.queue", "prediction.run"} <= names

        until(complete, timeout=30, what="the prediction's spans")
    finally:
        live.stop()
    spans = {s.name: s for s in _spans(receiver)}
    request, queue, run = (
        spans[n] for n in ("POST /v1/predictions", "prediction.queue", "prediction.run")
    )
    assert queue.trace_id == run.trace_id == request.trace_id  # one trace
    assert queue.parent_span_id == run.parent_span_id == request.span_id
    attributes = {a.key: a.value.string_value for a in run.attributes}
    assert attributes["vendo.prediction.id"] == pid
    assert attributes["vendo.pool"] == f"version:{versions['a']}"
    assert attributes["vendo.status"] == "succeeded"
