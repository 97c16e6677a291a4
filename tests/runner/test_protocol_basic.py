from __future__ import annotations

from typing import Callable

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
    assert c.of("p1", "started")
    assert c.logs("p1") == "predicting world\n"


def test_shutdown_exits_zero(child: Callable[..., Child]) -> None:
    c = child("rt_hello")
    assert c.ready()["type"] == "ready"
    assert c.run("p1", {"text": "a"})["status"] == "succeeded"
    assert c.close() == 0
