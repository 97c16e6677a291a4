"""Predictions (and trainings: ``kind``) and the read side of their jobs; claiming and
the scheduler's group-committed writes live in :mod:`vendo.queue` and the scheduler."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vendo.errors import BadRequest
from vendo.store.database import Database
from vendo.store.ids import utcnow
from vendo.store.metrics import final_metrics
from vendo.store.paging import Page, decode_cursor, encode_cursor
from vendo.store.status import PROCESSING, STARTING, TERMINAL
from vendo.store.tables import JobRow, PredictionRow, data_kept, deadline_pending, webhook_owed

__all__ = ["Predictions"]


class Predictions:
    """Predictions and trainings, and their jobs (read only)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, prediction_id: str) -> PredictionRow | None:
        with self._db.read() as s:
            return s.get(PredictionRow, prediction_id)

    def job(self, prediction_id: str) -> JobRow | None:
        """The prediction's job (its place in the queue), if it has one."""
        with self._db.read() as s:
            return s.scalar(sa.select(JobRow).where(JobRow.prediction_id == prediction_id))

    def page(
        self,
        owner_id: int | None,
        *,
        cursor: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        model_id: int | None = None,
        kind: str = "prediction",
        limit: int = 100,
    ) -> Page[PredictionRow]:
        """Newest first, keyset-paginated on (created_at, id)."""
        stmt = sa.select(PredictionRow).where(PredictionRow.kind == kind)
        if owner_id is not None:
            stmt = stmt.where(PredictionRow.owner_id == owner_id)
        if model_id is not None:
            stmt = stmt.where(PredictionRow.model_id == model_id)
        if created_after is not None:
            stmt = stmt.where(PredictionRow.created_at > created_after)
        if created_before is not None:
            stmt = stmt.where(PredictionRow.created_at < created_before)
        return self._keyset_page(stmt, cursor, limit)

    def _keyset_page(
        self, stmt: sa.Select[PredictionRow], cursor: str | None, limit: int
    ) -> Page[PredictionRow]:
        key = sa.tuple_(PredictionRow.created_at, PredictionRow.id)
        backwards = False  # a "previous" cursor: the page just newer than it
        if cursor:
            data = decode_cursor(cursor)
            try:
                at = datetime.fromisoformat(str(data["t"]))
                pid = str(data["i"])
            except (KeyError, ValueError) as exc:
                raise BadRequest("invalid cursor") from exc
            backwards = data.get("d") == "prev"
            stmt = stmt.where(key > sa.tuple_(at, pid) if backwards else key < sa.tuple_(at, pid))
        if backwards:
            stmt = stmt.order_by(PredictionRow.created_at.asc(), PredictionRow.id.asc())
        else:
            stmt = stmt.order_by(PredictionRow.created_at.desc(), PredictionRow.id.desc())
        with self._db.read() as s:
            rows = list(s.scalars(stmt.limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        if backwards:
            rows.reverse()
            has_next, has_prev = True, more
        else:
            has_next, has_prev = more, cursor is not None
        next_cursor = prev_cursor = None
        if rows and has_next:
            last = rows[-1]
            next_cursor = encode_cursor({"t": last.created_at.isoformat(), "i": last.id})
        if rows and has_prev:
            first = rows[0]
            prev_cursor = encode_cursor(
                {"t": first.created_at.isoformat(), "i": first.id, "d": "prev"}
            )
        return Page(rows, next_cursor, prev_cursor)

    def mark_started(self, prediction_id: str, at: datetime | None = None) -> bool:
        """``starting`` -> ``processing`` with ``started_at``; False if it was not
        ``starting`` (already canceled, say)."""
        with self._db.write() as s:
            result = s.execute(
                sa.update(PredictionRow)
                .where(PredictionRow.id == prediction_id, PredictionRow.status == STARTING)
                .values(status=PROCESSING, started_at=at or utcnow())
            )
            return bool(getattr(result, "rowcount", 0))

    def append_logs(self, prediction_id: str, text: str) -> None:
        if not text:
            return
        with self._db.write() as s:
            s.execute(
                sa.update(PredictionRow)
                .where(PredictionRow.id == prediction_id)
                .values(logs=PredictionRow.logs + text)
            )

    def finish(
        self,
        prediction_id: str,
        status: str,
        *,
        output: Any = None,
        error: str | None = None,
        metrics: dict[str, Any] | None = None,
        at: datetime | None = None,
        cancel_reason: str | None = None,
        keep_output: bool = False,
        session: Session | None = None,
    ) -> PredictionRow | None:
        """Move a prediction to a terminal state (once: a terminal one is left alone and
        None returned). ``metrics`` gains ``total_time`` (created -> completed) and keeps
        ``predict_time`` if given. With ``keep_output`` the accumulated iterator output
        stays (``output`` is ignored). ``session``: the caller's write transaction
        (``write()``), so that the change commits with the caller's other writes."""
        if status not in TERMINAL:
            raise ValueError(f"{status!r} is not a terminal status")
        at = at or utcnow()
        with nullcontext(session) if session is not None else self._db.write() as s:
            row = s.scalar(
                sa.select(PredictionRow).where(PredictionRow.id == prediction_id).with_for_update()
            )
            if row is None or row.status in TERMINAL:
                return None
            merged = final_metrics(
                row.metrics, metrics, created_at=row.created_at, started_at=row.started_at, at=at
            )
            row.status = status
            row.completed_at = at
            row.error = error
            row.metrics = merged
            row.run_input = None
            if cancel_reason is not None:
                row.cancel_reason = cancel_reason
            if not keep_output:
                row.output = output
            s.flush()
            return row

    def overdue(self, now: datetime, limit: int = 500) -> list[PredictionRow]:
        """Unfinished predictions whose ``deadline`` has passed, earliest first, at most
        ``limit`` (the sweep that ends them comes back for the rest). An index read of
        the overdue ones only: its cost does not grow with the number queued."""
        with self._db.read() as s:
            return list(
                s.scalars(
                    sa.select(PredictionRow)
                    .where(
                        deadline_pending(),
                        PredictionRow.deadline <= now,
                        PredictionRow.status.in_((STARTING, PROCESSING)),
                    )
                    .order_by(PredictionRow.deadline)
                    .limit(limit)
                )
            )

    def owed_webhooks(self, limit: int = 1000) -> list[str]:
        """Ids of finished predictions whose ``completed`` webhook was never handed to
        the outbox (the server stopped first, or a restart finished them), oldest first."""
        with self._db.read() as s:
            return list(
                s.scalars(
                    sa.select(PredictionRow.id)
                    .where(
                        webhook_owed(),
                        PredictionRow.status.in_(tuple(TERMINAL)),
                    )
                    .order_by(PredictionRow.completed_at, PredictionRow.id)
                    .limit(limit)
                )
            )

    def mark_webhook_done(self, prediction_id: str) -> None:
        """The prediction's ``completed`` webhook is in the outbox's hands."""
        with self._db.write() as s:
            s.execute(
                sa.update(PredictionRow)
                .where(PredictionRow.id == prediction_id)
                .values(webhook_done=True)
            )

    def remove_data(self, completed_before: datetime, batch: int = 1000) -> list[PredictionRow]:
        """Retention: clear input, output and logs of predictions completed before the
        given time (``data_removed``). Returns the rows as they were (id, owner,
        input folder), so the caller can delete their input folders and files.

        Candidates are found by an index read, then changed ``batch`` at a time in short
        write transactions: a sweep never holds SQLite's one writer for long, and keeps
        up however many predictions a period brings."""
        removed: list[PredictionRow] = []
        while True:
            with self._db.read() as s:
                found = s.execute(
                    sa.select(PredictionRow.id, PredictionRow.input_dir, PredictionRow.owner_id)
                    .where(
                        data_kept(),
                        PredictionRow.completed_at < completed_before,
                        PredictionRow.source == "api",
                    )
                    .order_by(PredictionRow.completed_at)
                    .limit(batch)
                ).all()
            if not found:
                return removed
            with self._db.write() as s:
                s.execute(
                    sa.update(PredictionRow)
                    .where(PredictionRow.id.in_([r.id for r in found]), data_kept())
                    .values(input={}, output=None, logs="", run_input=None, data_removed=True)
                    .execution_options(synchronize_session=False)
                )
            removed.extend(
                PredictionRow(id=r.id, input_dir=r.input_dir, owner_id=r.owner_id) for r in found
            )
            if len(found) < batch:
                return removed
