from __future__ import annotations

from typing import Any

import click
import pytest

from vendo.cli.inputs import parse_inputs

PROPS: dict[str, Any] = {
    "steps": {"type": "integer"},
    "scale": {"type": "number"},
    "upscale": {"type": "boolean"},
    "tags": {"type": "array", "items": {"type": "string"}},
    "sizes": {"type": "array", "items": {"type": "integer"}},
    "image": {"type": "string", "format": "uri"},
    "images": {"type": "array", "items": {"type": "string", "format": "uri"}},
    "extra": {"type": "object"},
    "mixed": {"anyOf": [{"type": "number"}, {"type": "string"}]},
}


def parse(*pairs: str, json_input: str | None = None) -> dict[str, Any]:
    return parse_inputs(pairs, json_input, PROPS, lambda path: f"file:{path}")


def test_values_take_the_schema_type() -> None:
    assert parse("steps=20", "scale=0.5", "upscale=yes", 'extra={"a": 1}', "mixed=3") == {
        "steps": 20,
        "scale": 0.5,
        "upscale": True,
        "extra": {"a": 1},
        "mixed": 3,
    }


def test_unconvertible_values_stay_strings_for_validation_to_name() -> None:
    assert parse("steps=many", "upscale=maybe") == {"steps": "many", "upscale": "maybe"}


def test_lists_repeat_or_come_whole() -> None:
    assert parse("tags=a", "tags=b c", "sizes=1", "sizes=2") == {
        "tags": ["a", "b c"],
        "sizes": [1, 2],
    }
    assert parse('tags=["x", "y"]') == {"tags": ["x", "y"]}


def test_files_go_through_the_callers_file_function() -> None:
    assert parse("image=@cat.png", "images=@a.png", "images=@b.png") == {
        "image": "file:cat.png",
        "images": ["file:a.png", "file:b.png"],
    }


def test_dash_i_overrides_json() -> None:
    assert parse("steps=3", json_input='{"steps": 1, "scale": 2}') == {"steps": 3, "scale": 2}


@pytest.mark.parametrize(
    ("pairs", "json_input", "message"),
    [(("steps",), None, "name=value"), ((), "[1]", "JSON object"), ((), "{", "not valid JSON")],
)
def test_mistakes_are_usage_errors(
    pairs: tuple[str, ...], json_input: str | None, message: str
) -> None:
    with pytest.raises(click.UsageError, match=message):
        parse(*pairs, json_input=json_input)
