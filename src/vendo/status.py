"""The platform's vocabulary of states: a prediction's status and a job's state.

Stdlib only and import-free, so that every layer (and ``vendo serve-model``, which
loads no store) speaks the same words. The members are strings: they compare equal to,
hash like and serialize as the bare values stored in the database and sent over HTTP.
"""

from __future__ import annotations

import enum

__all__ = ["TERMINAL", "JobState", "PredictionStatus", "pool_key"]


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


def pool_key(version_id: str, deployment: str | None = None) -> str:
    """The key of the pool (and queue) a prediction runs in: its deployment's
    (``deployment:<owner>/<name>``) or, without one, its version's shared pool
    (``version:<id>``). Metrics label pools with it."""
    if deployment:
        return f"deployment:{deployment}"
    return f"version:{version_id}"
