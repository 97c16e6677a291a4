"""Keep-alive comments while a stream is idle (the interval is shortened for the test)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from streaming_support import TOKEN, register_models

import vendo.api.v1.prediction_stream as predictions_api
import vendo.api.v1.stream as stream
from support import serve_in_thread
from vendo.app import create_app
from vendo.config import Settings


@pytest.fixture
def idle_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """The app in a thread, with no scheduler: predictions stay queued, streams idle."""
    assert stream.KEEPALIVE_INTERVAL <= 15.0  # what 1.0.7's 30 s read timeout needs
    # the route imports the interval by name: shorten it where the route reads it
    monkeypatch.setattr(stream, "KEEPALIVE_INTERVAL", 0.3)
    monkeypatch.setattr(predictions_api, "KEEPALIVE_INTERVAL", 0.3)
    data_dir = tmp_path / "data"
    versions = register_models(data_dir, {"tokens": "sse_tokens"})
    settings = Settings(data_dir=data_dir, api_token=TOKEN, _env_file=None)  # type: ignore[call-arg]
    app = create_app(settings, run_scheduler=False)
    with serve_in_thread(app) as url:
        yield url, versions["tokens"]


def test_idle_stream_sends_keepalive_comments(idle_server: tuple[str, str]) -> None:
    url, version = idle_server
    r = httpx.post(
        f"{url}/v1/predictions",
        json={"version": version, "input": {}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 201, r.text
    stream_url = r.json()["urls"]["stream"]
    comments = []
    with httpx.stream("GET", stream_url, timeout=10) as s:
        for line in s.iter_lines():
            assert not line.startswith(("event:", "data:")), "nothing happened yet"
            if line.startswith(":"):
                comments.append(time.monotonic())
                if len(comments) == 3:
                    break
    assert len(comments) == 3
