"""The SSE encoder against the official clients' own decoders."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from replicate.stream import EventSource

from vendo.api.v1.stream import format_comment, format_event, output_text

TRICKY = [
    "plain",
    " leading space",
    "trailing space ",
    "  ",
    "",
    "\n",
    "two\nlines",
    "\n\nblank lines\n",
    "data: looks like a field",
    ": looks like a comment",
    "id: 99",
    "ünïcødé ✓",
    "a\tb",
]
JS_DIR = Path(__file__).resolve().parent.parent / "js"


def decode_python(wire: str) -> list[tuple[str, str, str]]:
    """Decode with replicate 1.0.7's decoder, lines split as httpx splits them."""
    decoder = EventSource.Decoder()
    got = []
    for line in wire.splitlines():
        event = decoder.decode(line)
        if event is not None:
            got.append((event.id, event.event.value, event.data))
    return got


@pytest.mark.parametrize("text", TRICKY)
def test_python_client_decodes_text_intact(text: str) -> None:
    wire = format_comment() + format_event(7, "output", text) + format_comment()
    assert decode_python(wire) == [("7", "output", text)]


@pytest.mark.parametrize(("text", "arrives"), [("a\rb", "a\nb"), ("c\r\nd", "c\nd"), ("\r", "\n")])
def test_carriage_returns_become_line_breaks_not_losses(text: str, arrives: str) -> None:
    assert decode_python(format_event(1, "output", text)) == [("1", "output", arrives)]


def test_every_name_and_json_data() -> None:
    wire = (
        format_event(1, "output", output_text({"x": [1, "é"]}))
        + format_event(2, "logs", "line\n")
        + format_event(3, "error", json.dumps({"detail": "boom"}))
        + format_event(4, "done", json.dumps({"reason": "error"}))
    )
    assert decode_python(wire) == [
        ("1", "output", '{"x": [1, "é"]}'),
        ("2", "logs", "line\n"),
        ("3", "error", '{"detail": "boom"}'),
        ("4", "done", '{"reason": "error"}'),
    ]


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="start"):
        format_event(1, "start", "")


def test_js_client_decodes_text_intact(node_client: str) -> None:
    node = node_client
    wire = format_comment() + "".join(format_event(n, "output", t) for n, t in enumerate(TRICKY))
    script = """
const { EventSourceParserStream } = require("replicate/vendor/eventsource-parser/stream");
const wire = require("fs").readFileSync(0, "utf8");
(async () => {
  const stream = new Blob([wire]).stream()
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new EventSourceParserStream());
  const out = [];
  for await (const e of stream) out.push([e.id, e.event, e.data]);
  process.stdout.write(JSON.stringify(out));
})();
"""
    result = subprocess.run(
        [node, "-e", script], input=wire, cwd=JS_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [[str(n), "output", t] for n, t in enumerate(TRICKY)]
