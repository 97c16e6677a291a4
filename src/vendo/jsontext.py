"""JSON text as the platform writes it: encoded by orjson.

A sync prediction writes JSON four times (its row's JSON columns, the message to its
runner) and answers with more: the standard library's encoder took about 1.5 us for
each small value and 6 us for a prediction object (Starlette builds a new encoder per
answer), orjson a tenth of that. What orjson refuses (an integer beyond 64 bits, an
object key that is not a string, a string holding a lone surrogate) is encoded by the
standard library instead, as compact ASCII JSON.

``NaN`` and the infinities, which JSON has no words for, become ``null``. (Starlette's
strict encoder made them a 500; only alongside a value orjson refuses does the standard
library write them, as ``NaN``.) Decoding stays with the standard library: orjson reads
an integer beyond 64 bits as a float.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["json_bytes", "json_text"]


def json_bytes(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: beyond what orjson encodes
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def json_text(value: Any) -> str:
    """:func:`json_bytes` as text (a JSON column's bind value)."""
    return json_bytes(value).decode("utf-8")
