"""Files (uploads and prediction outputs; their bytes live in
:mod:`vendo.files.storage`) and the server's own settings kept in the database."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from vendo.store.database import Database
from vendo.store.paging import Page, offset_page
from vendo.store.tables import FileRow, MetaRow

__all__ = ["Files", "Meta"]


class Files:
    """The records of stored files."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, row: FileRow) -> FileRow:
        with self._db.write() as s:
            s.add(row)
        return row

    def get(self, file_id: str) -> FileRow | None:
        with self._db.read() as s:
            return s.get(FileRow, file_id)

    def page(self, owner_id: int, *, cursor: str | None = None, limit: int = 100) -> Page[FileRow]:
        """The owner's uploads, newest first."""
        stmt = (
            sa.select(FileRow)
            .where(FileRow.owner_id == owner_id, FileRow.kind == "upload")
            .order_by(FileRow.created_at.desc(), FileRow.id.desc())
        )
        with self._db.read() as s:
            return offset_page(s, stmt, cursor, limit)

    def delete(self, file_id: str) -> None:
        with self._db.write() as s:
            s.execute(sa.delete(FileRow).where(FileRow.id == file_id))

    def expired(self, now: datetime, limit: int = 500) -> list[FileRow]:
        with self._db.read() as s:
            return list(s.scalars(sa.select(FileRow).where(FileRow.expires_at <= now).limit(limit)))

    def of_prediction(self, prediction_id: str) -> list[FileRow]:
        with self._db.read() as s:
            return list(s.scalars(sa.select(FileRow).where(FileRow.prediction_id == prediction_id)))


class Meta:
    """Server-wide values (a signing key, say), made once and shared by every process
    on the database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def value(self, key: str, default: str) -> str:
        """The value of ``key``, storing ``default`` the first time."""
        with self._db.write() as s:
            row = s.get(MetaRow, key)
            if row is None:
                row = MetaRow(key=key, value=default)
                s.add(row)
            return row.value
