"""vendo.jsontext: orjson's encoding, the standard library's for what orjson refuses."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from vendo.jsontext import json_bytes, json_text

PLAIN: list[Any] = [
    {"id": "abc", "n": 3, "f": 0.25, "ok": True, "none": None, "list": [1, "two", [3.5]]},
    {"text": "héllo ✓ 雨 🙂", "escape": 'quote " backslash \\ newline \n tab \t nul \x00'},
    {"tiny": 1e-05, "huge": 1.5e300, "negative": -0.0, "max64": 2**63 - 1, "min64": -(2**63)},
    [],
    "just a string",
]


@pytest.mark.parametrize("value", PLAIN)
def test_what_orjson_encodes_reads_back_as_the_standard_librarys(value: Any) -> None:
    assert json.loads(json_bytes(value)) == json.loads(json.dumps(value))
    assert json.loads(json_text(value)) == value


def test_answers_are_compact_utf8() -> None:
    assert json_bytes({"a": [1, 2], "b": "✓"}) == '{"a":[1,2],"b":"✓"}'.encode()


def test_nan_and_the_infinities_become_null() -> None:
    value = {"nan": math.nan, "inf": math.inf, "minus_inf": -math.inf, "list": [math.nan]}
    assert json.loads(json_bytes(value)) == {
        "nan": None,
        "inf": None,
        "minus_inf": None,
        "list": [None],
    }


def test_integers_beyond_64_bits_keep_every_digit() -> None:
    value = {"big": 2**70, "small": -(2**70), "list": [2**64, 1.5]}
    assert json.loads(json_bytes(value)) == value
    assert json.loads(json_text(value)) == value


def test_keys_that_are_not_strings_are_written_as_the_standard_library_writes_them() -> None:
    value = {1: "one", 2.5: "two and a half", None: "none", False: "no"}
    assert json.loads(json_bytes(value)) == json.loads(json.dumps(value))


def test_a_lone_surrogate_is_escaped_and_reads_back_as_itself() -> None:
    value = {"text": "a\ud800b"}
    encoded = json_bytes(value)
    assert encoded.isascii() and b"\\ud800" in encoded
    assert json.loads(encoded) == value
