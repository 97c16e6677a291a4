"""spec/cog.md §10 items 1 and 2: what loads, and setup(weights)."""

from __future__ import annotations

from typing import Callable

import pytest

import vendo.sdk

from .driver import Child


@pytest.mark.parametrize(
    ("fixture", "ref", "input", "output"),
    [
        ("rt_hello", "predict.py:Predictor", {"text": "x"}, "hello x"),  # legacy predict
        ("rt_run_method", "predict.py:Model", {"n": 4}, 8),  # plain class with run
        ("rt_function", "predict.py:predict", {"a": 2}, 3),  # a function
        ("rt_bare_runner", "predict.py", {}, "runner"),  # bare file: Runner first
        ("rt_hello", "predict.py", {"text": "y"}, "hello y"),  # bare file: then Predictor
    ],
)
def test_refs_load_and_run(
    child: Callable[..., Child], fixture: str, ref: str, input: dict, output: object
) -> None:
    c = child(fixture, ref)
    assert c.ready()["type"] == "ready"
    done = c.run("p", input)
    assert (done["status"], done["output"]) == ("succeeded", output)


def test_run_and_predict_both_defined_is_a_load_error(child: Callable[..., Child]) -> None:
    c = child("rt_both_methods")
    failed = c.ready()
    assert failed["type"] == "setup_failed"
    assert "defines both run() and predict()" in failed["error"]
    assert c.process.wait(10) == 1


def test_setup_weights_from_env(child: Callable[..., Child], tmp_path) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w")
    c = child("rt_setup_weights", env={"COG_WEIGHTS": str(weights)})
    assert c.ready()["type"] == "ready"
    assert c.run("p", {})["output"] == f"Path:{weights}"


def test_setup_weights_none_without_env(child: Callable[..., Child]) -> None:
    c = child("rt_setup_weights")
    assert c.ready()["type"] == "ready"
    assert c.run("p", {})["output"] == "none"


def test_async_setup_with_sync_predict(child: Callable[..., Child]) -> None:
    c = child("rt_async_setup", env={"COG_WEIGHTS": "s3://bucket/w"})
    assert c.ready()["type"] == "ready"
    assert c.run("p", {})["output"] == "weights=s3://bucket/w"


def test_input_rule_break_fails_setup_naming_the_input(child: Callable[..., Child]) -> None:
    c = child("rt_bad_input")
    failed = c.ready()
    assert failed["type"] == "setup_failed"
    assert failed["error"].startswith("LoadError: predict(): input 'name': ge/le")
    assert "ge/le" in c.logs(None)


def test_cog_and_its_submodules_import(child: Callable[..., Child]) -> None:
    c = child("rt_cog_imports")
    assert c.ready()["type"] == "ready"
    done = c.run("p", {})
    assert done["output"] == ["Coder", "Path", "Secret", vendo.sdk.__version__], done


def test_module_state_persists_and_large_input_round_trips(
    child: Callable[..., Child],
) -> None:
    c = child("rt_state")
    assert c.ready()["type"] == "ready"
    assert c.run("a", {"text": "x"})["output"]["calls"] == 1
    big = "0123456789abcdef" * (7 * 1024 * 1024 // 16)  # 7 MiB
    done = c.run("b", {"text": big})
    assert done["output"]["calls"] == 2
    assert done["output"]["length"] == len(big)
    assert done["output"]["echo"] == big
