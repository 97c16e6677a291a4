"""Property-based fuzzing of the request body parser (issue 9): whatever bytes arrive,
:func:`vendo.api.body.parse_json` returns strict JSON within the depth cap or raises
one of the project's request errors (400/413/422), never anything else."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vendo.api.body import parse_json
from vendo.errors import BadRequest, InvalidInput, RequestError

DEPTH = 8

# JSON text, valid or nearly: fragments a hostile client would try, glued together
fragments = st.sampled_from(
    [
        "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" * 450, "1" * 5000, "0.5",
        '"\\ud800"', '"\\udfff"', '"\\ud83d\\ude00"', '"\\u0000"', '"\\\\ud800"', '"\\"',
        "[", "]", "{", "}", ",", ":", '"k"', "null", "true", "false", '"\\', "\x00", "\ud800",
        "[" * 50, "]" * 50, "{" * 20, '{"a":' * 20, "}" * 20, " ", "\n",
    ]
)  # fmt: skip
glued = st.lists(fragments, max_size=30).map("".join)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)
# Python's dumps writes NaN/Infinity and escapes surrogates: exactly the hostile forms
dumped = json_values.map(lambda v: json.dumps({"input": v}))
bodies = st.one_of(
    st.binary(max_size=200),
    glued.map(lambda s: s.encode("utf-8", "surrogatepass")),
    dumped.map(lambda s: s.encode("utf-8")),
)


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            level += 1
            deepest = max(deepest, level)
            stack.extend((c, level) for c in (item.values() if isinstance(item, dict) else item))
    return deepest


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_the_parser_only_ever_raises_the_projects_request_errors(raw: bytes) -> None:
    try:
        value = parse_json(raw, max_depth=DEPTH)
    except RequestError as exc:
        assert exc.status in (400, 413, 422) and exc.detail
        return
    # accepted: strict JSON, valid UTF-8, within the depth cap
    json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    assert _depth(value) <= DEPTH


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b'{"input": {"x": NaN}}', BadRequest),
        (b'{"input": {"x": Infinity}}', BadRequest),
        (b'{"input": {"x": -Infinity}}', BadRequest),
        (b'{"input": {"x": 1e400}}', BadRequest),
        (b'{"input": {"x": ' + b"1" * 5000 + b"}}", BadRequest),
        (b"[" * 5000 + b"]" * 5000, InvalidInput),
        (b'{"a": ' * 5000 + b"1" + b"}" * 5000, InvalidInput),
        (b"[" * 100_000, InvalidInput),
        (b'{"input": {"text": "\\ud800"}}', InvalidInput),
        (b'{"input": {"\\udc00": 1}}', InvalidInput),
        (b'{"input": {"text": "a\\u0000"}}', InvalidInput),
        (b'{"input": {"a\\u0000": 1}}', InvalidInput),
        (b'{"input": {"text": "\xed\xa0\x80"}}', BadRequest),  # a surrogate as UTF-8 bytes
    ],
)
def test_each_hostile_body_gets_its_error(raw: bytes, error: type[RequestError]) -> None:
    with pytest.raises(error):
        parse_json(raw, max_depth=64)


def test_a_surrogate_error_names_the_field_and_pairs_pass() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_json(b'{"input": {"text": "ok", "items": ["a", "\\ud800"]}}', max_depth=64)
    assert [e.field for e in info.value.errors] == ["input.items.1"]
    value = parse_json(b'{"input": {"text": "\\ud83d\\ude00 \\\\ud800"}}', max_depth=64)
    assert value == {"input": {"text": "\U0001f600 \\ud800"}}


def test_depth_at_the_limit_passes_and_numbers_stay_exact() -> None:
    assert _depth(parse_json(b"[" * 64 + b"]" * 64, max_depth=64)) == 64
    value = parse_json(b'{"n": 12345678901234567890, "f": 1.5e308}', max_depth=64)
    assert value["n"] == 12345678901234567890 and math.isfinite(value["f"])
