"""Server-sent events as the official clients read them (spec/replicate-api.md §5).

The wire format of ``urls.stream``: every event carries ``id:`` (Python ``replicate``
1.0.7 drops events until it has seen one), one of the four names the clients accept, and
its text as ``data:`` lines. A line break inside the text starts a new ``data:`` line;
each line is written as ``data: `` + the line, so the decoders, which strip one space
after the colon, give back a leading space intact. SSE has no way to carry a bare
carriage return (decoders end a line at ``\\r``, ``\\n`` or ``\\r\\n``): ``\\r\\n`` and
``\\r`` are sent as line breaks, so the text arrives with ``\\n`` there and nothing lost.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["EVENT_NAMES", "KEEPALIVE_INTERVAL", "format_comment", "format_event", "output_text"]

#: The only names the clients accept (1.0.7 raises on any other).
EVENT_NAMES = frozenset({"output", "logs", "error", "done"})

#: Seconds of silence before a keep-alive comment: 1.0.7 gives up after 30 s.
KEEPALIVE_INTERVAL = 15.0

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def format_event(event_id: int, name: str, text: str) -> str:
    """One event: ``id``, ``event`` and one ``data:`` line per line of ``text``."""
    if name not in EVENT_NAMES:
        raise ValueError(f"SSE event {name!r} is not one the clients accept")
    data = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(text))
    return f"id: {event_id}\nevent: {name}\n{data}\n"


def format_comment(text: str = "keep-alive") -> str:
    """A comment line (clients ignore it; it keeps proxies and read timeouts at bay)."""
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text)) + "\n"


def output_text(value: Any) -> str:
    """An ``output`` event's data: strings as they are (a file output is already its
    URL), anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
