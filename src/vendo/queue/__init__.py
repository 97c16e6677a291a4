"""The durable job queue (:mod:`vendo.queue.jobs`) and the in-memory event bus
(:mod:`vendo.queue.events`)."""

from vendo.queue.claims import Claimed, Job
from vendo.queue.events import Event, EventBus
from vendo.queue.jobs import (
    INTERRUPTED_ERROR,
    Queue,
    Recovery,
    insert_prediction,
    new_job,
    prediction_values,
)

__all__ = [
    "INTERRUPTED_ERROR",
    "Claimed",
    "Event",
    "EventBus",
    "Job",
    "Queue",
    "Recovery",
    "insert_prediction",
    "new_job",
    "prediction_values",
]
