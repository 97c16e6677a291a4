"""JSON answers, encoded as the platform writes JSON (:mod:`vendo.jsontext`)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse as _StarletteJSONResponse

from vendo.jsontext import json_bytes

__all__ = ["JSONResponse"]


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSON answer, encoded by orjson: every ``/v1`` answer is JSON, and a
    sync prediction's is the largest part of its reply."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content)
