"""Pages of rows and their opaque cursors, shared by every listing of the store."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vendo.errors import BadRequest

__all__ = ["Page", "decode_cursor", "encode_cursor", "offset_page"]

T = TypeVar("T")


class Page(list[T]):
    """One page of rows, newest first, with the opaque cursors of its neighbours."""

    def __init__(
        self, rows: Sequence[T], next_cursor: str | None, previous_cursor: str | None
    ) -> None:
        super().__init__(rows)
        self.next_cursor = next_cursor
        self.previous_cursor = previous_cursor


def encode_cursor(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The cursor's fields; :class:`BadRequest` if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, json.JSONDecodeError) as exc:
        raise BadRequest("invalid cursor") from exc
    if not isinstance(data, dict):
        raise BadRequest("invalid cursor")
    return data


def offset_page(session: Session, stmt: sa.Select[T], cursor: str | None, limit: int) -> Page[T]:
    """The page of ``stmt`` (already ordered) that ``cursor`` points at: for short
    listings, where an offset costs nothing worth a keyset."""
    offset = int(decode_cursor(cursor).get("o", 0)) if cursor else 0
    rows = list(session.scalars(stmt.offset(offset).limit(limit + 1)).unique())
    next_cursor = encode_cursor({"o": offset + limit}) if len(rows) > limit else None
    previous = encode_cursor({"o": max(0, offset - limit)}) if offset > 0 else None
    return Page(rows[:limit], next_cursor, previous)
