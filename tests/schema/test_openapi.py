"""spec/cog.md §7: OpenAPI pieces built in process from inspected signatures."""

from __future__ import annotations

from typing import Iterator, Optional

import pydantic

from vendo.schema import inspect_predictor, openapi_document
from vendo.sdk import BaseModel, Input, Path


class Result(BaseModel):
    text: str
    score: Optional[float] = None
    file: Optional[Path] = None


def test_predict_wins_enum_clashes_with_train() -> None:
    def run(color: str = Input(default="red", choices=["red", "blue"])) -> str:
        return color

    def train(color: str = Input(default="x", choices=["x", "y"])) -> str:
        return color

    document = openapi_document(
        inspect_predictor(run, "run", is_method=False),
        inspect_predictor(train, "train", is_method=False),
    )
    assert document["components"]["schemas"]["color"]["enum"] == ["red", "blue"]


def test_output_records_and_iterators() -> None:
    def records() -> Result: ...

    def paths() -> Iterator[Path]: ...

    def mapping() -> dict[str, int]: ...

    doc = openapi_document(inspect_predictor(records, "run", is_method=False))
    assert doc["components"]["schemas"]["Output"] == {
        "title": "Output",
        "type": "object",
        "properties": {
            "text": {"title": "Text", "type": "string"},
            "score": {"title": "Score", "type": "number", "nullable": True},
            "file": {"title": "File", "type": "string", "format": "uri", "nullable": True},
        },
        "required": ["text"],
    }
    doc = openapi_document(inspect_predictor(paths, "run", is_method=False))
    assert doc["components"]["schemas"]["Output"] == {
        "title": "Output",
        "type": "array",
        "items": {"type": "string", "format": "uri"},
        "x-cog-array-type": "iterator",
    }
    doc = openapi_document(inspect_predictor(mapping, "run", is_method=False))
    assert doc["components"]["schemas"]["Output"] == {
        "title": "Output",
        "type": "object",
        "additionalProperties": {"type": "integer"},
    }


class PydanticResult(pydantic.BaseModel):
    text: str
    score: Optional[float] = None
    tags: list[str] = []


def test_pydantic_output_record() -> None:
    def run() -> PydanticResult: ...

    doc = openapi_document(inspect_predictor(run, "run", is_method=False))
    assert doc["components"]["schemas"]["Output"] == {
        "title": "Output",
        "type": "object",
        "properties": {
            "text": {"title": "Text", "type": "string"},
            "score": {"title": "Score", "type": "number", "nullable": True},
            "tags": {"title": "Tags", "type": "array", "items": {"type": "string"}},
        },
        "required": ["text"],
    }


def _output_schema(annotation: object) -> dict:
    def run() -> None: ...

    run.__annotations__["return"] = annotation
    document = openapi_document(inspect_predictor(run, "run", is_method=False))
    return document["components"]["schemas"]["Output"]  # type: ignore[no-any-return]


def test_nested_output_types_are_described_in_full() -> None:
    from typing import Any, Dict, List

    number_lists = {"type": "array", "items": {"type": "number"}}
    cases: list[tuple[object, dict[str, Any]]] = [
        (dict[str, list[float]], {"type": "object", "additionalProperties": number_lists}),
        (
            list[dict[str, int]],
            {
                "type": "array",
                "items": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        ),
        (List[Path], {"type": "array", "items": {"type": "string", "format": "uri"}}),
        (list[list[float]], {"type": "array", "items": number_lists}),
        (
            Dict[str, Dict[str, float]],
            {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": {"type": "number"},
                },
            },
        ),
        (
            list[Optional[str]],
            {"type": "array", "items": {"type": "string", "nullable": True}},
        ),
        # no value type to describe: any object
        (dict[str, Any], {"type": "object"}),
        (Dict[str, dict], {"type": "object"}),
    ]
    for annotation, expected in cases:
        assert _output_schema(annotation) == {"title": "Output", **expected}, annotation


def test_nested_generics_stay_rejected_for_inputs() -> None:
    import pytest

    from vendo.schema import LoadError

    def run(x: list[list[float]]) -> str: ...

    with pytest.raises(LoadError, match="nested generic"):
        inspect_predictor(run, "run", is_method=False)
