"""A finished prediction's metrics, computed here and nowhere else."""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["final_metrics"]


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
