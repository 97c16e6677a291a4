"""Request bodies: read with a size cap, parsed as strict JSON with a depth cap.

Every route that takes a JSON or text body reads it here, so that no body can make the
server fail (a 5xx) or hold more memory than ``Settings.max_request_bytes``:

- a body over the size cap answers 413, checked on ``Content-Length`` and again while
  reading (a chunked body has no length);
- only RFC 8259 JSON: ``NaN``/``Infinity`` literals and numbers that overflow a double
  (``1e400``) are refused (400): they are not JSON and no client sends them on purpose;
- nesting deeper than ``Settings.max_json_depth`` answers 422 before the parser sees it
  (Python's parser recurses: thousands of ``[`` would end in a RecursionError);
- a string holding a lone UTF-16 surrogate (``"\\ud800"``, a valid JSON escape but
  not Unicode) or a NUL (``"\\u0000"``) answers 422 naming the field: PostgreSQL can
  store neither, and a surrogate cannot be sent on as UTF-8.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.requests import ClientDisconnect, Request

from vendo.api.headers import header
from vendo.errors import BadRequest, FieldError, InvalidInput, PayloadTooLarge

__all__ = ["parse_json", "read_body", "text_errors"]

# A surrogate or a NUL can only come from a \uXXXX escape once the body was decoded as
# strict UTF-8 (the parser refuses raw control characters in strings): look for one
# before walking the whole document.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F]|0000)")
_SURROGATE = re.compile("[\ud800-\udfff]")
# A string token always matches (its closing quote is optional): an unterminated string
# is skipped once, not rescanned from each quote inside it.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_BRACKET_TABLE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit} bytes (the server's VENDO_MAX_REQUEST_BYTES)"
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes, else 413 (read no further than that).
    Read from the ASGI messages themselves: Starlette's ``request.stream()``, an async
    generator, cost three times as much for the one message a JSON body comes in. The
    body is read once, here: nothing reads the request after."""
    length = header(request, "content-length")
    if length.isascii() and length.isdigit() and len(length) < 20 and int(length) > limit:
        raise _too_large(limit)
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: the client went away
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _depth_exceeds(raw: bytes, limit: int) -> bool:
    """Whether ``raw`` nests deeper than ``limit``, at C speed (no Python loop over the
    bytes): strings out, brackets only, then innermost pairs removed once per level."""
    if raw.count(b"[") + raw.count(b"{") <= limit:  # most bodies end here
        return False
    brackets = _STRING.sub(b"", raw).translate(_BRACKET_TABLE, _NOT_BRACKETS)
    for level in range(limit):
        if b"[" * (limit - level + 1) in brackets:
            return True
        shorter = brackets.replace(b"[]", b"")
        if not shorter or len(shorter) == len(brackets):
            return False  # balanced within the limit, or not JSON: the parser tells
        brackets = shorter
    return b"[" in brackets


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON (send a number or null)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


# Made once: json.loads with hooks builds a decoder (and its scanner) on every call.
_DECODER = json.JSONDecoder(parse_constant=_constant, parse_float=_finite)


_SURROGATE_PROBLEM = (
    "holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape that is not part of a pair), "
    "which is not valid Unicode text"
)
_NUL_PROBLEM = "holds a NUL character (\\u0000), which cannot be stored"


def _text_problem(text: str) -> str | None:
    if _SURROGATE.search(text):
        return _SURROGATE_PROBLEM
    if "\x00" in text:
        return _NUL_PROBLEM
    return None


def text_errors(value: Any, path: str = "") -> list[FieldError]:
    """One error per string, or object key, of ``value`` that holds a lone UTF-16
    surrogate or a NUL character, named by its dotted path (``input.text``,
    ``input.items.2``; a bad key is named by its object's path). PostgreSQL can store
    neither, and a surrogate cannot be sent on as UTF-8: both are refused at the door."""
    found: list[FieldError] = []
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                found.append(FieldError(where or "body", "unicode", problem))
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = _text_problem(key)
                if problem:
                    found.append(FieldError(where or "body", "unicode", f"a key {problem}"))
                    continue
                stack.append((f"{where}.{key}" if where else str(key), child))
        elif isinstance(item, list):
            stack.extend((f"{where}.{i}" if where else str(i), c) for i, c in enumerate(item))
    return sorted(found, key=lambda e: e.field)


def parse_json(raw: bytes, *, max_depth: int) -> Any:
    """``raw`` as strict JSON. Raises :class:`BadRequest` (not JSON, not UTF-8, NaN,
    Infinity, overflowing numbers) or :class:`InvalidInput` (too deep; a lone surrogate
    or a NUL in a string, naming the field); never anything else."""
    if _depth_exceeds(raw, max_depth):
        raise InvalidInput(
            [
                FieldError(
                    "body",
                    "depth",
                    f"the JSON nests arrays and objects deeper than {max_depth} levels",
                )
            ]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the request body is not UTF-8: {exc}") from None
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, the hooks' refusals and integers past
        # Python's digit limit; RecursionError cannot happen below the depth cap
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if _SUSPECT_ESCAPE.search(text):
        errors = text_errors(value)
        if errors:
            raise InvalidInput(errors)
    return value
