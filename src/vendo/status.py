"""The platform's vocabulary of a prediction's life: its status, a job's state, and
how a terminal state is told (its stream's last events, its final metrics).

Stdlib only and import-free, so that every layer (and ``vendo serve-model``, which
loads no store) speaks the same words. The members are strings: they compare equal to,
hash like and serialize as the bare values stored in the database and sent over HTTP.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

__all__ = [
    "DONE",
    "TERMINAL",
    "WEBHOOK_EVENTS",
    "JobState",
    "PredictionStatus",
    "final_metrics",
    "pool_key",
    "terminal_events",
]

DONE = "done"


class PredictionStatus(enum.StrEnum):
    """A prediction's ``status``, as Replicate's API and Cog's server name them."""

    STARTING = "starting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        """Whether the prediction has ended (it never changes again)."""
        return self in TERMINAL


TERMINAL = frozenset(
    {PredictionStatus.SUCCEEDED, PredictionStatus.FAILED, PredictionStatus.CANCELED}
)


class JobState(enum.StrEnum):
    """A queued job's ``state`` (a job is deleted once its run ends)."""

    QUEUED = "queued"  # waiting for a scheduler
    CLAIMED = "claimed"  # a scheduler runs it


#: A prediction's events (the bus's names) -> the webhook events they are sent as; the
#: others (``error``) go out inside the ``completed`` message.
WEBHOOK_EVENTS = {"start": "start", "output": "output", "logs": "logs", DONE: "completed"}


def terminal_events(status: str, error: str | None) -> list[tuple[str, Any]]:
    """The events that end a prediction's stream, as ``(event, data)``: ``error`` and
    ``done`` for a failure, ``done`` alone otherwise. The one place that says so: the
    scheduler publishes them, ``/v1``'s SSE route replays them for a finished
    prediction, and the webhook relays (``/v1``'s and ``serve-model``'s) turn ``done``
    into ``completed``; ``serve-model``'s SSE stream names them in Cog's words."""
    if status == PredictionStatus.FAILED:
        return [("error", {"detail": error or "prediction failed"}), (DONE, {"reason": "error"})]
    if status == PredictionStatus.CANCELED:
        return [(DONE, {"reason": "canceled"})]
    return [(DONE, {})]


def final_metrics(
    recorded: dict[str, Any] | None,
    reported: dict[str, Any] | None,
    *,
    created_at: datetime | None,
    started_at: datetime | None,
    at: datetime,
) -> dict[str, Any]:
    """A finished prediction's metrics, the one place they are computed: what was
    recorded, then what the model reported, ``total_time`` (created -> ``at``) and,
    unless the model measured it, ``predict_time`` (started -> ``at``)."""
    metrics = dict(recorded or {})
    metrics.update(reported or {})
    if created_at is not None:
        metrics["total_time"] = max(0.0, (at - created_at).total_seconds())
    if "predict_time" not in metrics and started_at is not None:
        metrics["predict_time"] = max(0.0, (at - started_at).total_seconds())
    return metrics


def pool_key(version_id: str, deployment: str | None = None, kind: str = "predict") -> str:
    """The key of the pool (and queue) a job runs in: a training's (``kind`` ``train``)
    the trainer version's runner in train mode (``train:<id>``); a prediction's, its
    deployment's (``deployment:<owner>/<name>``) or, without one, its version's shared
    pool (``version:<id>``). Metrics label pools with it."""
    if kind == "train":
        return f"train:{version_id}"
    if deployment:
        return f"deployment:{deployment}"
    return f"version:{version_id}"
