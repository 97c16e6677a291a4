"""The records of ``vendo serve-model``: the Cog prediction object as it is built from
the runner's events, and the limits on its input downloads."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vendo.serving.stream import EventStream
from vendo.status import TERMINAL, PredictionStatus
from vendo.webhooks.sender import PredictionWebhook

__all__ = [
    "SECRET_MASK",
    "FetchLimits",
    "PredictionRecord",
    "new_prediction_id",
]

SECRET_MASK = "**********"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def new_prediction_id() -> str:
    # Replicate's shape: 26 lowercase base32 characters
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").lower().rstrip("=")[:26]


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 100 * 1024 * 1024
    max_data_uri_bytes: int = 10 * 1024 * 1024
    timeout: float = 300.0
    allow_private: bool = True


class PredictionRecord:
    """The prediction object of Cog's API, updated as runner events arrive.

    Once finished it is sealed: the JSON is rendered once and the object graph behind
    it is dropped, so thousands of retained results cost little memory and give the
    garbage collector little to walk.
    """

    __slots__ = (
        "cancel_on_disconnect",
        "cancel_requested",
        "completed_at",
        "context",
        "created_at",
        "error",
        "finished",
        "finished_at",
        "id",
        "input",
        "logs",
        "masked_input",
        "metrics",
        "output",
        "outputs",
        "sse_created",
        "started_at",
        "status",
        "stream",
        "webhook",
        "upload_error",
        "work_dir",
        "_json",
    )

    def __init__(self, id: str, input: dict[str, Any], masked_input: dict[str, Any]) -> None:
        self.id = id
        self.input: dict[str, Any] | None = input
        self.masked_input: dict[str, Any] | None = masked_input
        self.status = PredictionStatus.STARTING
        self.output: Any = None
        self.outputs: list[Any] | None = None
        self.logs: list[str] = []
        self.error: str | None = None
        self.metrics: dict[str, Any] = {}
        self.created_at = datetime.now(timezone.utc)
        self.started_at: datetime | None = None
        self.completed_at: datetime | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.finished_at = 0.0
        self.webhook: PredictionWebhook | None = None
        self.stream: EventStream | None = None
        self.sse_created = False
        self.cancel_on_disconnect = False
        self.cancel_requested = False
        self.context: dict[str, str] = {}
        self.work_dir: Path | None = None
        self.upload_error: str | None = None  # the first output file that could not be
        self._json: bytes | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        if self._json is not None:
            sealed: dict[str, Any] = json.loads(self._json)
            return sealed
        return {
            "id": self.id,
            "status": self.status,
            "input": self.masked_input,
            "output": self.outputs if self.outputs is not None else self.output,
            "logs": "".join(self.logs),
            "error": self.error,
            "metrics": self.metrics,
            "created_at": self.created_at.isoformat(),
            "started_at": _iso(self.started_at),
            "completed_at": _iso(self.completed_at),
        }

    def to_json(self) -> bytes:
        if self._json is not None:
            return self._json
        return _dumps(self.to_dict()).encode()

    def seal(self) -> dict[str, Any]:
        """Render the final object once and let go of what it was built from."""
        body = self.to_dict()
        self._json = _dumps(body).encode()
        self.input = self.masked_input = self.output = self.outputs = None
        self.logs = []
        self.metrics = {}
        self.context = {}
        return body
