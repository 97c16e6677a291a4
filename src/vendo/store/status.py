"""Prediction statuses."""

from __future__ import annotations

__all__ = ["CANCELED", "FAILED", "PROCESSING", "STARTING", "STATUSES", "SUCCEEDED", "TERMINAL"]

STARTING = "starting"
PROCESSING = "processing"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"
STATUSES = (STARTING, PROCESSING, SUCCEEDED, FAILED, CANCELED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELED})
