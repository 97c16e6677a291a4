"""The official clients stream from Vendo: Python ``replicate`` 1.0.7 (base_url = server
root) and npm ``replicate`` 1.4.0 (baseUrl = server/v1), including a late subscriber and a
``Last-Event-ID`` reconnect."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import replicate
from replicate.stream import EventSource
from streaming_support import TOKEN, Server

JS_DIR = Path(__file__).resolve().parent.parent / "js"
TOKENS = ["Hello", " world", "\n two\nlines", "  ", "!"]
INPUT = {"tokens": json.dumps(TOKENS), "pause": 0.05}


@pytest.fixture
def client(server: Server, replicate_client: Any) -> replicate.Client:
    """The official Python client against the module's server."""
    client: replicate.Client = replicate_client(TOKEN, server.url)
    return client


def outputs(events: list[Any]) -> list[str]:
    return [str(e.data) for e in events if e.event.value == "output"]


# --- Python replicate 1.0.7 ------------------------------------------------------------


def test_python_stream_yields_tokens_intact(
    client: replicate.Client, server: Server, versions: dict[str, str]
) -> None:
    events = list(client.stream(f"admin/tokens:{versions['tokens']}", input=INPUT))
    assert outputs(events) == TOKENS  # leading spaces and newlines survive the decoder
    assert events[-1].event.value == "done"
    assert [e.event.value for e in events if e.event.value not in ("output", "logs")] == ["done"]
    ids = [int(e.id) for e in events]
    assert ids == sorted(set(ids))
    assert "".join(str(e) for e in events) == "".join(TOKENS)


def test_python_late_subscriber_gets_everything(
    client: replicate.Client, server: Server, versions: dict[str, str]
) -> None:
    prediction = client.predictions.create(version=versions["tokens"], input=INPUT)
    prediction.wait()
    assert prediction.status == "succeeded"
    url = prediction.urls["stream"]
    # the client's own stream reader, on a stream opened after the prediction finished
    with client._client.stream("GET", url, headers={"Accept": "text/event-stream"}) as r:
        events = list(EventSource(client, r))
    assert outputs(events) == TOKENS
    assert events[-1].event.value == "done"


def test_python_reconnect_with_last_event_id(
    client: replicate.Client, server: Server, versions: dict[str, str]
) -> None:
    prediction = client.predictions.create(version=versions["tokens"], input=INPUT)
    url = prediction.urls["stream"]
    first: list[Any] = []
    with client._client.stream("GET", url) as r:
        for event in EventSource(client, r):
            first.append(event)
            if len(outputs(first)) == 2:
                break  # drop the connection mid-stream
    headers = {"Last-Event-ID": first[-1].id}
    with client._client.stream("GET", url, headers=headers) as r:
        rest = list(EventSource(client, r))
    ids = [int(e.id) for e in first + rest]
    assert ids == sorted(set(ids)), "no duplicates, in order"
    assert outputs(first + rest) == TOKENS, "nothing lost"
    assert rest[-1].event.value == "done"
    assert server.wait(prediction.id)["status"] == "succeeded"


def test_python_stream_of_failing_model_raises(
    client: replicate.Client, server: Server, versions: dict[str, str]
) -> None:
    got: list[str] = []
    with pytest.raises(RuntimeError, match="failed after the tokens"):
        for event in client.stream(
            f"admin/tokens:{versions['tokens']}", input={**INPUT, "fail": True}
        ):
            if event.event.value == "output":
                got.append(str(event))
    assert got == TOKENS


# --- npm replicate 1.4.0 -----------------------------------------------------------------


@pytest.fixture(scope="module")
def node(node_client: str) -> str:
    return node_client


def run_js(node: str, server: Server, version: str, mode: str, *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [
            node,
            "stream.mjs",
            mode,
            f"{server.url}/v1",
            TOKEN,
            f"admin/tokens:{version}",
            json.dumps(INPUT),
            *extra,
        ],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def js_outputs(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"] for e in events if e["event"] == "output"]


def test_js_stream_yields_tokens_and_ends_at_done(
    node: str, server: Server, versions: dict[str, str]
) -> None:
    (events,) = run_js(node, server, versions["tokens"], "stream")["parts"]
    assert js_outputs(events) == TOKENS
    assert events[-1]["event"] == "done"
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(set(ids))


def test_js_late_subscriber_gets_everything(
    node: str, server: Server, versions: dict[str, str]
) -> None:
    result = run_js(node, server, versions["tokens"], "late")
    assert result["status"] == "succeeded"
    (events,) = result["parts"]
    assert js_outputs(events) == TOKENS
    assert events[-1]["event"] == "done"


def test_js_reconnect_with_last_event_id(
    node: str, server: Server, versions: dict[str, str]
) -> None:
    result = run_js(node, server, versions["tokens"], "resume", "3")
    first, rest = result["parts"]
    assert len(first) == 3
    ids = [int(e["id"]) for e in first + rest]
    assert ids == sorted(set(ids)), "no duplicates, in order"
    assert js_outputs(first + rest) == TOKENS, "nothing lost"
    assert rest[-1]["event"] == "done"
    assert server.wait(result["id"])["status"] == "succeeded"


def test_python_stream_keeps_text_after_carriage_returns(
    client: replicate.Client, server: Server, versions: dict[str, str]
) -> None:
    tokens = ["a\rb", "c\r\nd", "x"]
    events = client.stream(
        f"admin/tokens:{versions['tokens']}", input={"tokens": json.dumps(tokens)}
    )
    # SSE cannot carry a bare \r: it arrives as a line break, with nothing lost
    assert outputs(list(events)) == ["a\nb", "c\nd", "x"]
