"""Cog checklist clauses (spec/cog.md §10) checked through ``vendo serve-model``'s HTTP API
where other tests check them one layer down.

Item 5: each kind of violation is a 422 whose ``loc`` names the input; unknown keys are
ignored.  Item 9: every kind of output value serialises through the child and the server,
a file as a ``data:`` URL.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

CF_VIOLATIONS = [
    ({"word": 5}, "word"),  # type
    ({"word": "a"}, "word"),  # min_length
    ({"word": "abcdef"}, "word"),  # max_length
    ({"word": "ABC"}, "word"),  # regex
    ({"color": "blue"}, "color"),  # str choices
    ({"size": 3}, "size"),  # int choices
    ({"steps": 0}, "steps"),  # ge
    ({"steps": 51}, "steps"),  # le
    ({"steps": 2.5}, "steps"),  # int type
    ({"scale": "1"}, "scale"),  # number type
    ({"fast": 1}, "fast"),  # bool type
]


@pytest.fixture
async def cf_inputs(serve: Any) -> Any:
    return await serve("cf_inputs")


async def test_cf_each_violation_is_422_with_the_inputs_loc(cf_inputs: Any) -> None:
    for payload, field in CF_VIOLATIONS:
        r = await cf_inputs.client.post("/predictions", json={"input": payload})
        assert r.status_code == 422, (payload, r.text)
        detail = r.json()["detail"]
        assert [d["loc"] for d in detail] == [["body", "input", field]], payload
        assert detail[0]["type"] == "value_error" and detail[0]["msg"], payload


async def test_cf_every_invalid_input_is_listed_and_unknown_keys_are_ignored(
    cf_inputs: Any,
) -> None:
    r = await cf_inputs.client.post(
        "/predictions", json={"input": {"word": "ABC", "steps": 0, "nope": 1}}
    )
    assert r.status_code == 422
    assert sorted(d["loc"][2] for d in r.json()["detail"]) == ["steps", "word"]
    r = await cf_inputs.client.post(
        "/predictions",
        json={"input": {"word": "ok", "size": 2, "scale": 3, "fast": True, "nope": [1]}},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "succeeded"
    assert body["output"] == "ok|red|2|3|3.0|True"
    assert "nope" not in body["input"]


async def test_cf_every_output_kind_serialises(serve: Any) -> None:
    served = await serve("cf_outputs")
    r = await served.client.post("/predictions", json={"input": {"text": "note"}})
    body = r.json()
    assert body["status"] == "succeeded", body
    output = body["output"]
    url = output.pop("file")
    assert url.startswith("data:text/plain;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == b"note"
    assert output == {
        "primitive": 3,
        "list": [1, "a", 2.5],
        "dict": {"k": True},
        "record": {"name": "r", "size": 2},
        "pydantic": {"tags": ["a", "b"]},
        "typed": {"title": "Alien"},
        "opaque": {"deep": [1, {"x": None}]},
        "enum": "red",
    }
