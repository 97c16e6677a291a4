"""Cancel, concurrency, metrics, setup failures and healthchecks (spec/cog.md §10)."""

from __future__ import annotations

import os
from typing import Callable

import pytest

from vendo.runner.protocol import encode

from .driver import Child


@pytest.mark.parametrize("mode", ["sleep", "busy"])
def test_cancel_sync_prediction(child: Callable[..., Child], mode: str) -> None:
    c = child("rt_cancel")
    assert c.ready()["type"] == "ready"
    c.predict("p", {"mode": mode})
    # wait until the model is inside its sleep or loop
    while "started" not in c.logs("p"):
        c.recv()
    c.send({"type": "cancel", "id": "p"})
    # spec: canceled within 1 s; a generous 10 s read timeout still fails a cancel that
    # waits for the model's 60 s to run out
    c.sock.settimeout(10)
    done = c.wait_for("done", id="p")
    assert done["status"] == "canceled"
    assert isinstance(done["metrics"]["predict_time"], float)
    # the child keeps serving
    c.predict("q", {"mode": "quick"})
    assert c.wait_for("done", id="q")["output"] == "finished"


def test_swallowed_cancel_still_reports_canceled(child: Callable[..., Child]) -> None:
    c = child("rt_cancel")
    assert c.ready()["type"] == "ready"
    c.predict("p", {"mode": "swallow"})
    while "started" not in c.logs("p"):
        c.recv()
    c.send({"type": "cancel", "id": "p"})
    assert c.wait_for("done", id="p")["status"] == "canceled"


def test_cancel_async_prediction_raises_cancelled_error(child: Callable[..., Child]) -> None:
    c = child("rt_async_cancel")
    assert c.ready()["type"] == "ready"
    c.predict("p", {"seconds": 60})
    while "sleeping" not in c.logs("p"):
        c.recv()
    c.send({"type": "cancel", "id": "p"})
    assert c.wait_for("done", id="p")["status"] == "canceled"
    assert "got CancelledError" in c.logs("p")


@pytest.mark.parametrize(
    ("env", "cli", "expected"),
    [
        ({}, None, 2),  # @concurrent(max=2)
        ({}, 4, 4),  # cog.yaml concurrency.max beats the decorator
        ({"COG_MAX_CONCURRENCY": "3"}, 4, 3),  # the environment beats both
    ],
)
def test_concurrency_precedence(
    child: Callable[..., Child], env: dict, cli: int | None, expected: int
) -> None:
    c = child("rt_concurrent", env=env, max_concurrency=cli)
    assert c.ready()["max_concurrency"] == expected


def test_async_predictions_run_at_once(child: Callable[..., Child]) -> None:
    c = child("rt_concurrent", env={"COG_MAX_CONCURRENCY": "3"})
    assert c.ready()["type"] == "ready"
    for pid in ("a", "b", "c"):
        c.predict(pid, {"wait_for": 3})
    results = {pid: c.wait_for("done", id=pid)["output"] for pid in ("a", "b", "c")}
    assert results == {"a": 3, "b": 3, "c": 3}
    # with several slots, Python-level prints go to the prediction that made them
    for pid in ("a", "b", "c"):
        assert c.logs(pid).startswith("start ")
    # ... and raw fd writes go to the runner log
    c.close()
    assert c.logs(None).count("raw fd write\n") == 3


def test_sync_predictor_with_concurrency_is_a_load_error(child: Callable[..., Child]) -> None:
    c = child("rt_sync_concurrency", max_concurrency=2)
    failed = c.ready()
    assert failed["type"] == "setup_failed"
    assert "predict() is synchronous" in failed["error"]


def test_metrics_modes_paths_and_context(child: Callable[..., Child]) -> None:
    c = child("rt_metrics")
    assert c.ready()["type"] == "ready"
    done = c.run("p", {}, context={"user": "ada"})
    assert done["status"] == "succeeded", c.logs("p")
    assert done["output"] == {"user": "ada"}
    metrics = done["metrics"]
    assert isinstance(metrics.pop("predict_time"), float)
    assert metrics == {"tokens": 5, "steps": ["a", "b"], "timing": {"load": {"seconds": 0.5}}}
    streamed = [(m["name"], m["value"], m["mode"]) for m in c.of("p", "metric")]
    assert streamed[:3] == [
        ("tokens", 3, "replace"),
        ("tokens", 2, "incr"),
        ("steps", "a", "append"),
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("name", "must start with a letter"),
        ("type", "changes type from number to string; delete it first"),
    ],
)
def test_bad_metric_fails_the_prediction(
    child: Callable[..., Child], bad: str, message: str
) -> None:
    c = child("rt_metrics")
    assert c.ready()["type"] == "ready"
    done = c.run("p", {"bad": bad})
    assert done["status"] == "failed"
    assert done["error"].startswith("MetricError: ")
    assert message in done["error"]


def test_setup_exception_is_setup_failed_with_logs(child: Callable[..., Child]) -> None:
    c = child("rt_setup_fails")
    failed = c.ready()
    assert failed == {"type": "setup_failed", "error": "RuntimeError: weights are missing"}
    logs = c.logs(None)
    assert "loading weights" in logs
    assert "Traceback" in logs
    assert c.process.wait(10) == 1


@pytest.mark.parametrize("fixture", ["rt_setup_slow", "rt_async_setup_slow"])
def test_setup_timeout(child: Callable[..., Child], fixture: str) -> None:
    c = child(fixture, env={"COG_SETUP_TIMEOUT": "0.5"})
    failed = c.ready()
    assert failed["type"] == "setup_failed"
    assert failed["error"] == "TimeoutError: setup() timed out after 0.5 seconds"
    assert c.process.wait(10) == 1


@pytest.mark.parametrize(
    ("mode", "ok", "error"),
    [
        ("ok", True, None),
        ("false", False, "user-defined healthcheck returned False"),
        ("raise", False, "Healthcheck error: RuntimeError: database unreachable"),
        ("slow", False, "timed out after 5.0 seconds"),
    ],
)
def test_healthcheck(child: Callable[..., Child], mode: str, ok: bool, error: str | None) -> None:
    c = child("rt_healthcheck", env={"HEALTH_MODE": mode})
    ready = c.ready()
    assert ready["has_healthcheck"] is True
    c.send({"type": "healthcheck", "id": "h1"})
    assert c.wait_for("healthcheck", id="h1") == {
        "type": "healthcheck",
        "id": "h1",
        "ok": ok,
        "error": error,
    }
    # a prediction still works while or after the healthcheck ran
    assert c.run("p", {})["output"] == "ok"


def test_healthcheck_without_user_function_is_ok(child: Callable[..., Child]) -> None:
    c = child("rt_hello")
    assert c.ready()["has_healthcheck"] is False
    c.send({"type": "healthcheck", "id": "h"})
    assert c.wait_for("healthcheck", id="h")["ok"] is True


def test_train_mode(child: Callable[..., Child]) -> None:
    c = child("rt_train", "train.py:train", mode="train")
    ready = c.ready()
    assert ready["type"] == "ready", c.logs(None)
    schemas = ready["openapi"]["components"]["schemas"]
    assert "TrainingInput" in schemas and "Input" not in schemas
    assert "/trainings" in ready["openapi"]["paths"]
    done = c.run("t", {"steps": 3})
    assert done["status"] == "succeeded"
    weights = done["output"]["weights"]["__vendo_file__"]
    with open(weights) as f:
        assert f.read() == "trained 3 steps"
    os.remove(weights)


def test_cancel_during_fast_stream_keeps_the_protocol_intact(
    child: Callable[..., Child],
) -> None:
    c = child("rt_cancel_stream")
    assert c.ready()["type"] == "ready"
    for round in range(3):
        pid = f"p{round}"
        c.predict(pid, {"n": 10_000_000})
        while len(c.of(pid, "output")) < 50:
            c.recv()
        c.send({"type": "cancel", "id": pid})
        assert c.wait_for("done", id=pid)["status"] == "canceled"
    done = c.run("last", {"n": 3})
    assert done["status"] == "succeeded"
    assert len(c.outputs("last")) == 3


def test_cancel_of_an_unknown_or_finished_id_is_ignored(child: Callable[..., Child]) -> None:
    c = child("rt_hello")
    assert c.ready()["type"] == "ready"
    c.send({"type": "cancel", "id": "later"})
    assert c.run("later", {"text": "a"})["status"] == "succeeded"
    c.send({"type": "cancel", "id": "later"})  # after it finished
    assert c.run("later", {"text": "b"})["status"] == "succeeded"


def test_async_cancel_right_after_predict_reports_done(child: Callable[..., Child]) -> None:
    """A cancel that reaches the child before the task's first step still ends in ``done``.

    Both frames go out in one write, so the child reads them back to back and the cancel
    usually lands before the event loop has stepped the new task once. ``Task.cancel()``
    at that point would drop the coroutine unstarted and no ``done`` would ever come
    (the parent would wait out its grace period and kill the child).
    """
    c = child("rt_async_cancel")
    assert c.ready()["type"] == "ready"
    # spec: canceled within 1 s; the timeout is generous for a loaded machine, the bug
    # it guards against never answers at all
    c.sock.settimeout(10)
    for round in range(20):
        pid = f"p{round}"
        frames = encode(
            {"type": "predict", "id": pid, "input": {"seconds": 60}, "context": {}}
        ) + encode({"type": "cancel", "id": pid})
        c.sock.sendall(frames)
        assert c.wait_for("done", id=pid)["status"] == "canceled"
    assert c.run("last", {"seconds": 0})["status"] == "succeeded"
