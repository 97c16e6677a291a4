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
