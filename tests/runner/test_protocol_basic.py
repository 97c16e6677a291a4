from __future__ import annotations

import time
from typing import Callable

import pytest

from vendo.runner.protocol import encode

from .driver import Child


def test_sync_predictor_round_trip(child: Callable[..., Child]) -> None:
    c = child("rt_hello")
    ready = c.ready()
    assert ready["type"] == "ready"
    assert ready["max_concurrency"] == 1
    assert ready["has_healthcheck"] is False
    assert ready["openapi"]["components"]["schemas"]["Input"]["required"] == ["text"]

    done = c.run("p1", {"text": "world"})
    assert done["status"] == "succeeded"
    assert done["output"] == "hello world"
    assert done["error"] is None
    assert isinstance(done["metrics"]["predict_time"], float)
    # the parent reports the start as it sends the prediction: the child sends only this
    assert [m["type"] for m in c.messages if m.get("id") == "p1"] == ["log", "done"]
    assert c.logs("p1") == "predicting world\n"


def test_shutdown_exits_zero(child: Callable[..., Child]) -> None:
    c = child("rt_hello")
    assert c.ready()["type"] == "ready"
    assert c.run("p1", {"text": "a"})["status"] == "succeeded"
    assert c.close() == 0


@pytest.mark.parametrize("fixture", ["rt_hello", "rt_concurrent"])
def test_frames_in_one_write_and_split_across_writes(
    child: Callable[..., Child], fixture: str
) -> None:
    c = child(fixture)
    assert c.ready()["type"] == "ready"
    inputs = {"rt_hello": {"text": "x"}, "rt_concurrent": {"wait_for": 1}}[fixture]
    frames = b"".join(
        encode({"type": "predict", "id": f"p{n}", "input": inputs, "context": {}}) for n in range(5)
    )
    c.sock.sendall(frames)  # five frames at once
    for n in range(5):
        assert c.wait_for("done", id=f"p{n}")["status"] == "succeeded"
    frame = encode({"type": "predict", "id": "slow", "input": inputs, "context": {}})
    for start in range(0, len(frame), 7):  # one frame in pieces
        c.sock.sendall(frame[start : start + 7])
        time.sleep(0.001)  # not a wait: pieces must reach the child apart
    assert c.wait_for("done", id="slow")["status"] == "succeeded"


def test_malformed_frame_makes_the_child_exit(child: Callable[..., Child]) -> None:
    c = child("rt_hello")
    assert c.ready()["type"] == "ready"
    c.sock.sendall(b"\x00\x00\x00\x02{]")
    assert c.process.wait(10) == 0
