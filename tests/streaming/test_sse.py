"""The SSE stream of /v1 predictions on the wire (spec/replicate-api.md §5)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from streaming_support import Server, register_models, sse_events

TOKENS = ["a", " b", "c\nd", "\n", "e "]


def read(url: str, headers: dict[str, str] | None = None, limit: int = 0) -> list[dict[str, Any]]:
    """Events (not comments) of one stream; stop after ``limit`` outputs when given."""
    got: list[dict[str, Any]] = []
    with httpx.stream("GET", url, headers=headers or {}, timeout=60) as r:
        assert r.status_code == 200, r.read()
        for event in sse_events(r.iter_lines()):
            if "comment" in event:
                continue
            got.append(event)
            if limit and sum(e["event"] == "output" for e in got) >= limit:
                break
    return got


def outputs(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"] for e in events if e["event"] == "output"]


def create(server: Server, versions: dict[str, str], **inputs: Any) -> dict[str, Any]:
    return server.create(versions["tokens"], {"tokens": json.dumps(TOKENS), **inputs})


def test_stream_url_is_a_capability(server: Server, versions: dict[str, str]) -> None:
    p = create(server, versions)
    url = p["urls"]["stream"]
    with httpx.stream("GET", url, timeout=60) as r:  # no Authorization
        assert r.status_code == 200
        assert r.headers["content-type"].split(";")[0] == "text/event-stream"
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["access-control-allow-origin"] == "*"
        r.read()
    parts = urlsplit(url)
    forged = urlunsplit(parts._replace(query="token=" + "A" * 43))
    assert httpx.get(forged, timeout=10).status_code in (401, 403)
    assert httpx.get(urlunsplit(parts._replace(query="")), timeout=10).status_code in (401, 403)


def test_every_event_has_an_id_and_a_known_name(server: Server, versions: dict[str, str]) -> None:
    p = create(server, versions, pause=0.02)
    events = read(p["urls"]["stream"])
    assert {e["event"] for e in events} <= {"output", "logs", "error", "done"}
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(set(ids))
    assert outputs(events) == TOKENS  # newlines and leading/trailing spaces intact
    assert events[-1] == {"id": events[-1]["id"], "event": "done", "data": "{}"}
    logs = "".join(e["data"] for e in events if e["event"] == "logs")
    assert "log line 0" in logs and "log line 4" in logs


def test_not_streamable_without_iterator_output(server: Server, versions: dict[str, str]) -> None:
    p = server.create(versions["coop"], {"seconds": 0})
    assert "stream" not in p["urls"]
    p = server.create(versions["coop"], {"seconds": 0}, stream=True)
    assert "stream" in p["urls"]  # create said "stream": true


def test_finished_prediction_replays_then_done(server: Server, versions: dict[str, str]) -> None:
    p = create(server, versions)
    server.wait(p["id"])
    first = read(p["urls"]["stream"])
    again = read(p["urls"]["stream"])
    assert outputs(first) == TOKENS
    assert first == again
    assert first[-1]["event"] == "done"


def test_last_event_id_resumes_without_loss_or_duplicates(
    server: Server, versions: dict[str, str]
) -> None:
    p = create(server, versions, pause=0.1)
    url = p["urls"]["stream"]
    first = read(url, limit=2)
    rest = read(url, headers={"Last-Event-ID": first[-1]["id"]})
    ids = [int(e["id"]) for e in first + rest]
    assert ids == sorted(set(ids))
    assert outputs(first + rest) == TOKENS
    assert read(url) == first + rest  # the same story as one uninterrupted read


def test_several_subscribers_see_the_same_stream(server: Server, versions: dict[str, str]) -> None:
    p = create(server, versions, pause=0.1)
    results: list[list[dict[str, Any]]] = [[] for _ in range(3)]

    def follow(n: int) -> None:
        results[n] = read(p["urls"]["stream"])

    threads = [threading.Thread(target=follow, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert outputs(results[0]) == TOKENS
    assert results[0] == results[1] == results[2]


def test_disconnecting_does_not_cancel(server: Server, versions: dict[str, str]) -> None:
    p = create(server, versions, pause=0.2)
    assert len(outputs(read(p["urls"]["stream"], limit=1))) == 1
    done = server.wait(p["id"])
    assert done["status"] == "succeeded"
    assert done["output"] == TOKENS


def test_failure_sends_error_then_done(server: Server, versions: dict[str, str]) -> None:
    p = create(server, versions, fail=True)
    events = read(p["urls"]["stream"])
    assert outputs(events) == TOKENS
    error, done = events[-2:]
    assert error["event"] == "error"
    assert "failed after the tokens" in json.loads(error["data"])["detail"]
    assert done["event"] == "done" and json.loads(done["data"]) == {"reason": "error"}


def test_cancel_sends_done_canceled(server: Server, versions: dict[str, str]) -> None:
    p = create(server, versions, pause=5)
    url = p["urls"]["stream"]
    first = read(url, limit=1)
    server.cancel(p["id"])
    rest = read(url, headers={"Last-Event-ID": first[-1]["id"]})
    assert json.loads(rest[-1]["data"]) == {"reason": "canceled"}
    assert server.wait(p["id"])["status"] == "canceled"


@pytest.mark.slow  # a second server
def test_replay_after_a_server_restart(tmp_path: Path) -> None:
    """The live history is gone with the old process; the replay comes from the store."""
    data_dir = tmp_path / "data"
    versions = register_models(data_dir, {"tokens": "sse_tokens"})
    server = Server(data_dir)
    server.start()
    try:
        p = create(server, versions)
        server.wait(p["id"])
        before = read(p["urls"]["stream"])
    finally:
        server.stop()
    server.start()
    try:
        after = read(p["urls"]["stream"])
    finally:
        server.stop()
    assert outputs(before) == outputs(after) == TOKENS
    assert after[-1]["event"] == "done" and json.loads(after[-1]["data"]) == {}
    ids = [int(e["id"]) for e in after]
    assert ids == sorted(set(ids))
