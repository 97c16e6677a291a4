"""Prediction statuses: the names of :mod:`vendo.status`, as the store exports them."""

from __future__ import annotations

from vendo.status import TERMINAL, JobState, PredictionStatus

__all__ = [
    "CANCELED",
    "FAILED",
    "PROCESSING",
    "STARTING",
    "STATUSES",
    "SUCCEEDED",
    "TERMINAL",
    "JobState",
    "PredictionStatus",
]

STARTING = PredictionStatus.STARTING
PROCESSING = PredictionStatus.PROCESSING
SUCCEEDED = PredictionStatus.SUCCEEDED
FAILED = PredictionStatus.FAILED
CANCELED = PredictionStatus.CANCELED
STATUSES = tuple(PredictionStatus)
