"""The writes of a prediction's run: its start, logs, outputs, end and metrics.

Each function returns a :data:`~vendo.store.batch.Write` (a function of a Core
connection) for a :class:`~vendo.store.batch.BatchWriter`, or runs in any Core
transaction (``store.transaction()``). The statements are built once: the ORM's
bulk-update path and the statement-cache keys of fresh statements cost more than the
SQL itself here. They keep the store's rule that a terminal prediction never changes.

A run's writes take a *fence* (scaled mode): ``(job id, worker id)``, the claim the run
holds. A fenced write changes nothing once that job is no longer claimed by that worker
(its worker was found lost and its claim recovered: see :mod:`vendo.queue.claims`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from vendo.store.batch import Write
from vendo.store.metrics import final_metrics
from vendo.store.status import PROCESSING, STARTING
from vendo.store.tables import JobRow, PredictionRow, UTCDateTime

__all__ = [
    "FINISH",
    "Fence",
    "append_logs",
    "final_metrics",
    "finish_params",
    "mark_started",
    "set_output",
]

UNFINISHED = (STARTING, PROCESSING)

# (job id, worker id): a run's claim; None: unfenced (SQLite's one process, a deferred run)
Fence = tuple[int, str] | None

_preds = cast(sa.Table, PredictionRow.__table__)
_jobs = cast(sa.Table, JobRow.__table__)
_TIME = UTCDateTime()
# the run's job is still claimed by its worker (a primary-key probe)
_CLAIM_HELD = (
    sa.select(_jobs.c.id)
    .where(_jobs.c.id == sa.bindparam("p_job"), _jobs.c.claimed_by == sa.bindparam("p_worker"))
    .exists()
)

_MARK_STARTED = (
    _preds.update()
    .where(_preds.c.id == sa.bindparam("p_id"), _preds.c.status == STARTING)
    .values(status=PROCESSING, started_at=sa.bindparam("p_at", type_=_TIME))
)
_APPEND_LOGS = (
    _preds.update()
    .where(_preds.c.id == sa.bindparam("p_id"))
    .values(logs=_preds.c.logs + sa.bindparam("p_text", type_=sa.Text))
)
_SET_OUTPUT = (
    _preds.update()
    .where(_preds.c.id == sa.bindparam("p_id"), _preds.c.status.in_(UNFINISHED))
    .values(output=sa.bindparam("p_output", type_=_preds.c.output.type))
)
_MARK_STARTED_FENCED = _MARK_STARTED.where(_CLAIM_HELD)
_APPEND_LOGS_FENCED = _APPEND_LOGS.where(_CLAIM_HELD)
_SET_OUTPUT_FENCED = _SET_OUTPUT.where(_CLAIM_HELD)
# The terminal write: run it with :func:`finish_params`; its rowcount says whether the
# prediction was still unfinished (and so changed).
FINISH = (
    _preds.update()
    .where(_preds.c.id == sa.bindparam("p_id"), _preds.c.status.in_(UNFINISHED))
    .values(
        status=sa.bindparam("p_status"),
        completed_at=sa.bindparam("p_at", type_=_TIME),
        error=sa.bindparam("p_error", type_=sa.Text),
        metrics=sa.bindparam("p_metrics", type_=_preds.c.metrics.type),
        output=sa.bindparam("p_output", type_=_preds.c.output.type),
        run_input=sa.null(),
        cancel_reason=sa.func.coalesce(
            sa.bindparam("p_cancel_reason", type_=sa.String(32)), _preds.c.cancel_reason
        ),
        # a run quicker than the start delay never had ``processing`` written
        started_at=sa.func.coalesce(_preds.c.started_at, sa.bindparam("p_started", type_=_TIME)),
    )
)


def _params(fence: Fence, **values: Any) -> dict[str, Any]:
    if fence is not None:
        values["p_job"], values["p_worker"] = fence
    return values


def mark_started(prediction_id: str, at: datetime, fence: Fence = None) -> Write:
    """``starting`` -> ``processing``; the result says whether it was still starting."""
    stmt = _MARK_STARTED if fence is None else _MARK_STARTED_FENCED
    params = _params(fence, p_id=prediction_id, p_at=at)

    def write(conn: sa.Connection) -> bool:
        return bool(conn.execute(stmt, params).rowcount)

    return write


def append_logs(prediction_id: str, text: str, fence: Fence = None) -> Write:
    stmt = _APPEND_LOGS if fence is None else _APPEND_LOGS_FENCED
    params = _params(fence, p_id=prediction_id, p_text=text)

    def write(conn: sa.Connection) -> None:
        conn.execute(stmt, params)

    return write


def set_output(prediction_id: str, output: list[Any], fence: Fence = None) -> Write:
    """The iterator output so far (the whole list: one write per batch, not per item)."""
    stmt = _SET_OUTPUT if fence is None else _SET_OUTPUT_FENCED
    params = _params(fence, p_id=prediction_id, p_output=output)

    def write(conn: sa.Connection) -> None:
        conn.execute(stmt, params)

    return write


def finish_params(
    prediction_id: str,
    *,
    status: str,
    at: datetime,
    error: str | None,
    metrics: dict[str, Any],
    output: Any,
    cancel_reason: str | None = None,
    started_at: datetime | None = None,
) -> dict[str, Any]:
    """Parameters of :data:`FINISH`. ``started_at``: when the run started, if
    ``processing`` may never have been written (a run quicker than the start delay)."""
    return {
        "p_id": prediction_id,
        "p_status": status,
        "p_at": at,
        "p_error": error,
        "p_metrics": metrics,
        "p_output": output,
        "p_cancel_reason": cancel_reason,
        "p_started": started_at,
    }
