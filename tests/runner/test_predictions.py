"""Predictions through the real child: inputs, outputs, errors and logs (spec/cog.md §10)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from .driver import Child


def test_required_and_optional_inputs(child: Callable[..., Child], tmp_path) -> None:
    c = child("rt_optional_inputs")
    ready = c.ready()
    schema = ready["openapi"]["components"]["schemas"]["Input"]
    # int with a None default, Secret with None and bare Optional are all optional
    assert "required" not in schema

    done = c.run("a", {"count": 1})
    assert done["status"] == "succeeded", done
    assert done["output"] == {
        "count": 1,
        "token": None,
        "label": None,
        "bare": None,
        "scale": 1.5,
        "scale_type": "float",
        "tags": ["a"],
        "image": None,
    }

    image = tmp_path / "in.txt"
    image.write_text("pixels")
    done = c.run("b", {"count": 2, "label": None, "scale": 3, "token": "t", "image": str(image)})
    out = done["output"]
    assert (out["label"], out["scale"], out["scale_type"]) == (None, 3.0, "float")
    assert out["token"] == "Secret"
    assert out["image"] == "Path:pixels"

    omitted = c.run("c", {})
    assert omitted["status"] == "succeeded", omitted
    assert omitted["output"]["count"] is None


def test_none_default_on_a_plain_type_is_optional(child: Callable[..., Child], tmp_path) -> None:
    c = child("rt_none_defaults")
    ready = c.ready()
    schema = ready["openapi"]["components"]["schemas"]["Input"]
    # Cog: Input() without a default is required; an explicit None default is not, and
    # the schema (like earlier Cog releases) gives no default for it.
    assert schema["required"] == ["prompt", "steps"]
    for name in ("image", "seed"):
        assert "default" not in schema["properties"][name]
        assert "nullable" not in schema["properties"][name]
    assert schema["properties"]["image"]["format"] == "uri"

    done = c.run("a", {"prompt": "p", "steps": 2})
    assert (done["status"], done["output"]) == ("succeeded", "p|none|None|2"), done
    image = tmp_path / "in.txt"
    image.write_text("pixels")
    done = c.run("b", {"prompt": "p", "steps": 3, "seed": 7, "image": str(image)})
    assert (done["status"], done["output"]) == ("succeeded", "p|pixels|7|3"), done
    missing = c.run("c", {"prompt": "p"})
    assert missing["status"] == "failed"
    assert "steps: Field required" in missing["error"]


def test_secret_is_masked_in_logs(child: Callable[..., Child]) -> None:
    c = child("rt_secret")
    assert c.ready()["type"] == "ready"
    done = c.run("p", {"token": "hunter2"})
    assert done["output"] == "2retnuh"
    assert "hunter2" not in c.logs("p")
    assert "token is **********" in c.logs("p")


def test_iterator_outputs_in_yield_order(child: Callable[..., Child]) -> None:
    c = child("rt_iterator")
    assert c.ready()["type"] == "ready"
    done = c.run("p", {"n": 5})
    assert done["status"] == "succeeded"
    assert done["output"] is None
    assert [m["index"] for m in c.of("p", "output")] == [0, 1, 2, 3, 4]
    assert c.outputs("p") == [f"item-{i}" for i in range(5)]


def test_iterator_failure_keeps_partial_output(child: Callable[..., Child]) -> None:
    c = child("rt_iterator")
    assert c.ready()["type"] == "ready"
    done = c.run("p", {"n": 5, "fail_at": 2})
    assert done["status"] == "failed"
    assert done["error"] == "RuntimeError: failed at 2"
    assert c.outputs("p") == ["item-0", "item-1"]
    assert "Traceback" in c.logs("p")


def test_async_predictor(child: Callable[..., Child]) -> None:
    c = child("rt_async_predict")
    assert c.ready()["type"] == "ready"
    assert c.run("p", {"text": "abc"})["output"] == "ABC"


def test_async_generator_and_predict_time_spans_it(child: Callable[..., Child]) -> None:
    c = child("rt_async_generator")
    ready = c.ready()
    assert ready["type"] == "ready", c.logs(None)
    output = ready["openapi"]["components"]["schemas"]["Output"]
    assert output["x-cog-array-display"] == "concatenate"
    done = c.run("p", {"n": 4, "delay": 0.05})
    assert done["status"] == "succeeded", c.logs("p")
    assert c.outputs("p") == ["tok0 ", "tok1 ", "tok2 ", "tok3 "]
    assert done["metrics"]["predict_time"] >= 0.2


def test_system_exit_fails_only_that_prediction(child: Callable[..., Child]) -> None:
    c = child("rt_exit")
    assert c.ready()["type"] == "ready"
    done = c.run("a", {"how": "sys_exit"})
    assert done["status"] == "failed"
    assert done["error"] == "SystemExit: leaving now"
    assert "Traceback" in c.logs("a")
    assert c.run("b", {"how": "stay"})["output"] == "alive"


def test_os_exit_kills_the_child(child: Callable[..., Child]) -> None:
    c = child("rt_exit")
    assert c.ready()["type"] == "ready"
    c.predict("a", {"how": "os_exit"})
    while (message := c.recv()) is not None:
        assert message["type"] != "done"
    assert c.process.wait(10) == 3


def test_fd_level_and_subprocess_output_is_captured(child: Callable[..., Child]) -> None:
    c = child("rt_logs")
    assert c.ready()["type"] == "ready"
    assert c.run("p", {})["output"] == "logged"
    stdout = "".join(m["data"] for m in c.of("p", "log") if m["source"] == "stdout")
    stderr = "".join(m["data"] for m in c.of("p", "log") if m["source"] == "stderr")
    assert stdout == "python stdout\nfd stdout\nfrom a subprocess\n"
    assert stderr == "python stderr\n"


def test_invalid_input_fails_the_prediction(child: Callable[..., Child]) -> None:
    c = child("rt_function", "predict.py:predict")
    assert c.ready()["type"] == "ready"
    done = c.run("p", {"a": -1, "unknown": 1})
    assert done["status"] == "failed"
    assert done["error"] == ("InputValidationError: a: Input should be greater than or equal to 0")


def test_file_path_and_url_inputs(child: Callable[..., Child], tmp_path) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text("document")
    pages = [tmp_path / "1.txt", tmp_path / "2.txt"]
    for i, page in enumerate(pages):
        page.write_text(f"page {i}")
    c = child("rt_file_input")
    assert c.ready()["type"] == "ready"
    payload = {"doc": str(doc), "pages": [str(p) for p in pages], "url": "https://x.test/a.png"}
    done = c.run("p", payload)
    assert done["status"] == "succeeded", c.logs("p")
    output = done["output"]
    assert output["doc"] == "document" and output["doc_is_file"] is True
    assert output["pages"] == ["Path:page 0", "Path:page 1"]
    assert output["url"] == "https://x.test/a.png"
    # output files travel as a marker with an absolute path, never as bytes
    marker = output["file"]["__vendo_file__"]
    assert marker.startswith("/") and marker.endswith("/out.txt")
    with open(marker) as f:
        assert f.read() == "written"


def _output_folders(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("vendo-output-*"))


@pytest.mark.parametrize("how", ["shutdown", "socket_closed"])
def test_output_folder_is_removed_when_the_child_exits(
    child: Callable[..., Child], tmp_path: Path, how: str
) -> None:
    c = child("rt_output_folder", env={"TMPDIR": str(tmp_path)})
    assert c.ready()["type"] == "ready"
    assert _output_folders(tmp_path) == []  # made on first use only
    done = c.run("p", {"text": "bytes"})
    path = Path(done["output"]["__vendo_file__"])
    assert path.parent in _output_folders(tmp_path)
    assert path.read_bytes() == b"bytes"
    if how == "shutdown":
        assert c.close() == 0
    else:
        c.sock.close()  # the parent is gone
        assert c.process.wait(10) == 0
    assert _output_folders(tmp_path) == []


def test_logs_written_just_before_return_precede_done(child: Callable[..., Child]) -> None:
    c = child("rt_log_order")
    assert c.ready()["type"] == "ready"
    expected = {
        "none": ("", ""),
        "print": ("py {n}\n", ""),
        "subprocess": ("sub {n}\n", "e" * 200_000),
        "marker_prefix": ("raw {n} \x00\x01vendo-dr", ""),
    }
    for n in range(40):
        kind = list(expected)[n % len(expected)]
        pid = f"p{n}"
        assert c.run(pid, {"n": n, "kind": kind})["output"] == kind
        # only what arrived before "done" has been read at this point
        stdout = "".join(m["data"] for m in c.of(pid, "log") if m["source"] == "stdout")
        stderr = "".join(m["data"] for m in c.of(pid, "log") if m["source"] == "stderr")
        assert (stdout, stderr) == (expected[kind][0].format(n=n), expected[kind][1]), kind
    c.send({"type": "shutdown"})
    while c.recv() is not None:
        pass
    assert c.process.wait(10) == 0
    assert c.logs(None) == ""  # nothing came late, and no marker leaked
