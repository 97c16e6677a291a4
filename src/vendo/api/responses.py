"""JSON answers, encoded by orjson.

Every ``/v1`` answer is JSON, and a sync prediction's is the largest part of its
reply: the standard library's encoder (a new one per answer, as Starlette builds it)
took about 6 us for a prediction object, orjson about 0.4. What orjson refuses (an
integer beyond 64 bits, an object key that is not a string, a string holding a lone
surrogate) goes through the standard library as before. ``NaN`` and the infinities,
which JSON cannot say, become ``null`` (the standard library's strict mode, as
Starlette used it, made them a 500).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse

__all__ = ["JSONResponse", "json_bytes"]


def json_bytes(content: Any) -> bytes:
    """``content`` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(content)
    except TypeError:  # orjson.JSONEncodeError: beyond what orjson encodes
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSON answer, encoded by :func:`json_bytes`."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content)
