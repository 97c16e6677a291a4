"""spec/cog.md §3 request validation, from the OpenAPI Input schema alone (§10 items 4, 5, 8)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

import pytest

from vendo.schema import InputValidationError, inspect_predictor, openapi_document, validate_input
from vendo.sdk import Input, Path, Secret


def run(
    prompt: str = Input(min_length=2, max_length=5, regex="^[a-z]+$"),
    steps: int = Input(default=10, ge=1, le=50),
    scale: float = 1.0,
    fast: bool = False,
    color: str = Input(default="red", choices=["red", "green"]),
    size: int = Input(default=1, choices=[1, 2]),
    image: Optional[Path] = None,
    token: Secret = Input(default=None),
    tags: List[str] = Input(default=[]),
    extra: Dict[str, Any] = Input(default={}),
    mixed: Union[str, float, None] = None,
    either: Union[bool, int, float, str] = 0,
) -> str:
    return prompt


DOCUMENT = openapi_document(inspect_predictor(run, "run", is_method=False))
SCHEMAS = DOCUMENT["components"]["schemas"]


def check(**payload: Any) -> Dict[str, Any]:
    return validate_input(SCHEMAS["Input"], {"prompt": "abc", **payload}, SCHEMAS)


def errors(**payload: Any) -> List[Dict[str, Any]]:
    with pytest.raises(InputValidationError) as info:
        check(**payload)
    return info.value.errors


def one_error(**payload: Any) -> str:
    [error] = errors(**payload)
    assert error["loc"][:2] == ["body", "input"] and error["type"] == "value_error"
    return str(error["msg"])


def test_valid_payload_is_coerced_without_defaults() -> None:
    assert check(steps=3, scale=2) == {"prompt": "abc", "steps": 3, "scale": 2.0}
    assert isinstance(check(scale=2)["scale"], float)


def test_missing_required() -> None:
    with pytest.raises(InputValidationError) as info:
        validate_input(SCHEMAS["Input"], {}, SCHEMAS)
    assert info.value.errors == [
        {"loc": ["body", "input", "prompt"], "msg": "Field required", "type": "value_error"}
    ]


def test_unknown_keys_are_dropped_and_named() -> None:
    result = validate_input(SCHEMAS["Input"], {"prompt": "ab", "nope": 1}, SCHEMAS)
    assert result == {"prompt": "ab"}
    assert result.unknown == ("nope",)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"prompt": 5}, "Input should be a valid string"),
        ({"prompt": "a"}, "String should have at least 2 characters"),
        ({"prompt": "abcdef"}, "String should have at most 5 characters"),
        ({"prompt": "ABC"}, "String should match pattern '^[a-z]+$'"),
        ({"steps": 0}, "Input should be greater than or equal to 1"),
        ({"steps": 51}, "Input should be less than or equal to 50"),
        ({"steps": "3"}, "Input should be a valid integer"),
        ({"steps": True}, "Input should be a valid integer"),
        ({"steps": 2.5}, "Input should be a valid integer"),
        ({"scale": "1"}, "Input should be a valid number"),
        ({"fast": 1}, "Input should be a valid boolean"),
        ({"color": "blue"}, "Input should be 'red' or 'green'"),
        ({"size": 3}, "Input should be 1 or 2"),
        ({"tags": "a"}, "Input should be a valid list"),
        ({"tags": ["a", 1]}, "Input should be a valid string"),
        ({"extra": []}, "Input should be a valid dictionary"),
        ({"steps": None}, "Input should not be null"),
    ],
)
def test_violations(payload: Dict[str, Any], message: str) -> None:
    assert one_error(**payload) == message


def test_every_invalid_field_is_reported() -> None:
    names = [e["loc"][-1] for e in errors(prompt=1, steps=0, color="x")]
    assert names == ["prompt", "steps", "color"]


def test_null_on_nullable_is_none() -> None:
    assert check(image=None, mixed=None)["image"] is None


def test_str_float_none_union() -> None:
    assert check(mixed="a")["mixed"] == "a"
    assert check(mixed=1.5)["mixed"] == 1.5
    assert check(mixed=2)["mixed"] == 2.0
    assert one_error(mixed=True) == "Input should be one of: number, string"
    assert one_error(mixed={"a": 1}) == "Input should be one of: number, string"


def test_union_picks_the_most_specific_type() -> None:
    assert check(either=True)["either"] is True
    assert type(check(either=3)["either"]) is int
    assert type(check(either=3.5)["either"]) is float
    assert check(either="x")["either"] == "x"


def test_secret_and_path_are_strings() -> None:
    assert check(token="s", image="https://example.com/a.png")["token"] == "s"
    assert one_error(token=1) == "Input should be a valid string"
