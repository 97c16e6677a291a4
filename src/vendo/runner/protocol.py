"""Framed JSON messages between the parent and the runner child.

A frame is a 4-byte big-endian length followed by a UTF-8 JSON object with a
``"type"`` key. See docs/design/runtime.md for the message catalogue.

Stdlib only: this module runs inside model environments.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any, Dict, List, Literal, Optional, TypedDict

__all__ = [
    "FILE_KEY",
    "MAX_FRAME",
    "CancelMessage",
    "DoneMessage",
    "PARENT_ENV",
    "FrameDecoder",
    "HealthcheckMessage",
    "LogMessage",
    "MetricMessage",
    "OutputMessage",
    "PredictMessage",
    "ProtocolError",
    "ReadyMessage",
    "RunnerEvent",
    "SetupFailedMessage",
    "StartedMessage",
    "encode",
    "frame",
    "has_files",
    "read_message",
]

MAX_FRAME = 1 << 30
FILE_KEY = "__vendo_file__"
#: The child's environment names the PID it must not outlive (vendo.runner.lifeline).
PARENT_ENV = "VENDO_RUNNER_PARENT"
_HEADER = struct.Struct(">I")


# --- the messages (docs/design/runtime.md has their meaning) ---------------------------
# parent -> child


class PredictMessage(TypedDict):
    type: Literal["predict"]
    id: str
    input: Dict[str, Any]
    context: Dict[str, str]


class CancelMessage(TypedDict):
    type: Literal["cancel"]
    id: str


# child -> parent


class LogMessage(TypedDict):
    type: Literal["log"]
    id: Optional[str]  # None: setup or runner output
    source: str  # "stdout" | "stderr"
    data: str


class ReadyMessage(TypedDict):
    type: Literal["ready"]
    openapi: Dict[str, Any]
    max_concurrency: int
    has_healthcheck: bool


class SetupFailedMessage(TypedDict):
    type: Literal["setup_failed"]
    error: str


class StartedMessage(TypedDict):
    """Not on the wire: the parent's ``RunnerProcess`` reports it as it writes the
    ``predict`` message. A prediction is only sent to a free slot, and the child takes it
    at once, so the child's own message would say nothing new, at the cost of one more
    write and one more wake-up of the parent per prediction."""

    type: Literal["started"]
    id: str


class OutputMessage(TypedDict):
    type: Literal["output"]
    id: str
    index: int
    value: Any  # encoded; files as {FILE_KEY: path}


class MetricMessage(TypedDict):
    type: Literal["metric"]
    id: str
    name: str
    value: Any
    mode: str  # "replace" | "incr" | "append"


class DoneMessage(TypedDict):
    type: Literal["done"]
    id: str
    status: str  # "succeeded" | "failed" | "canceled"
    output: Any  # encoded; None for iterators
    error: Optional[str]
    metrics: Dict[str, Any]


class HealthcheckMessage(TypedDict):
    type: Literal["healthcheck"]
    id: str
    ok: bool
    error: Optional[str]


class RunnerEvent(TypedDict, total=False):
    """A prediction's event as the parent hands it on (``log``, ``started``, ``output``,
    ``metric``, ``done``): any of their fields, ``type`` always."""

    type: str
    id: str
    source: str
    data: str
    index: int
    value: Any
    name: str
    mode: str
    status: str
    output: Any
    error: Optional[str]
    metrics: Dict[str, Any]


def has_files(value: Any) -> bool:
    """Whether an output value holds file markers (``{FILE_KEY: path}``) anywhere."""
    if isinstance(value, dict):
        return FILE_KEY in value or any(has_files(v) for v in value.values())
    if isinstance(value, list):
        return any(has_files(v) for v in value)
    return False


class ProtocolError(Exception):
    """A frame was malformed or too large."""


def encode(message: Dict[str, Any]) -> bytes:
    """``message`` as one frame (a string holding a lone surrogate cannot be sent)."""
    return frame(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def frame(body: bytes) -> bytes:
    """A frame of ``body``, a message already encoded as UTF-8 JSON."""
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"message of {len(body)} bytes exceeds the {MAX_FRAME} byte limit")
    return _HEADER.pack(len(body)) + body


def _decode_body(body: bytes) -> Dict[str, Any]:
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from exc
    if not isinstance(message, dict) or "type" not in message:
        raise ProtocolError("frame is not a JSON object with a 'type'")
    return message


def _recv_exact(sock: socket.socket, n: int) -> Optional[bytes]:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_message(sock: socket.socket) -> Optional[Dict[str, Any]]:
    """Block until one message arrives; None when the peer closed the socket."""
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_FRAME} byte limit")
    body = _recv_exact(sock, length)
    if body is None:
        return None
    return _decode_body(body)


class FrameDecoder:
    """Incremental decoder for the parent's event loop: feed bytes, get messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> List[Dict[str, Any]]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            if length > MAX_FRAME:
                raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_FRAME} byte limit")
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[_HEADER.size : end])
            del self._buffer[:end]
            messages.append(_decode_body(body))
        return messages
