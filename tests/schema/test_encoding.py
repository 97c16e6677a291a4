"""spec/cog.md §4 output encoding (§10 item 9 at the encoding level)."""

from __future__ import annotations

import datetime
import enum
import io
import os
from dataclasses import dataclass
from pathlib import Path as PlainPath
from typing import Any, TypedDict

import pydantic
import pytest

from vendo.schema import encode_output
from vendo.schema.encoding import FILE_KEY
from vendo.sdk import BaseModel, Path, Secret


class Color(enum.Enum):
    RED = "red"


class Output(BaseModel):
    text: str
    when: datetime.date
    file: Path


class PydanticOutput(pydantic.BaseModel):
    n: int
    tags: list[str]


class Movie(TypedDict):
    title: str


@dataclass
class Plain:
    items: tuple[int, ...]


class FakeArray:
    """Enough of numpy's surface: ``tolist()``."""

    dtype = "float32"

    def tolist(self) -> Any:
        return [[1.0, 2.0], [3.0, 4.5]]


def test_primitives_and_containers() -> None:
    assert encode_output("s") == "s"
    assert encode_output(3) == 3
    assert encode_output(None) is None
    assert encode_output([1, (2, 3), {4}]) == [1, [2, 3], [4]]
    assert encode_output({"a": 1, 2: "b"}) == {"a": 1, "2": "b"}
    assert encode_output(x * 2 for x in range(3)) == [0, 2, 4]
    assert encode_output(Movie(title="Alien")) == {"title": "Alien"}
    assert encode_output({"opaque": {"deep": [1]}}) == {"opaque": {"deep": [1]}}


def test_enum_datetime_secret() -> None:
    assert encode_output(Color.RED) == "red"
    moment = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    assert encode_output(moment) == "2024-01-02T03:04:05+00:00"
    assert encode_output(Secret("x")) == "**********"


def test_records(tmp_path: PlainPath) -> None:
    file = tmp_path / "out.txt"
    file.write_text("x")
    out = Output(text="hi", when=datetime.date(2024, 5, 6), file=Path(file))
    assert encode_output(out) == {
        "text": "hi",
        "when": "2024-05-06",
        "file": {FILE_KEY: str(file)},
    }
    assert encode_output(PydanticOutput(n=1, tags=["a"])) == {"n": 1, "tags": ["a"]}
    assert encode_output(Plain(items=(1, 2))) == {"items": [1, 2]}
    assert encode_output(FakeArray()) == [[1.0, 2.0], [3.0, 4.5]]


def test_files_become_markers(tmp_path: PlainPath) -> None:
    on_disk = tmp_path / "a.png"
    on_disk.write_bytes(b"png")
    assert encode_output(on_disk) == {FILE_KEY: str(on_disk)}
    with open(on_disk, "rb") as handle:
        assert encode_output(handle) == {FILE_KEY: str(on_disk)}
    marker = encode_output(io.BytesIO(b"bytes"), str(tmp_path))
    path = marker[FILE_KEY]
    assert os.path.dirname(path) == str(tmp_path)
    with open(path, "rb") as f:
        assert f.read() == b"bytes"
    # a callable folder is asked for only when a file without a path needs one
    asked: list[int] = []

    def folder() -> str:
        asked.append(1)
        return str(tmp_path)

    assert encode_output(on_disk, folder) == {FILE_KEY: str(on_disk)}
    assert asked == []
    assert os.path.dirname(encode_output(io.BytesIO(b"x"), folder)[FILE_KEY]) == str(tmp_path)
    assert asked == [1]


def test_unknown_types_are_an_error() -> None:
    with pytest.raises(TypeError, match="cannot encode output of type object"):
        encode_output(object())


def test_file_key_is_the_protocol_constant() -> None:
    # schema may not import the runner package, so the key is written twice
    from vendo.runner.protocol import FILE_KEY as PROTOCOL_KEY

    assert FILE_KEY == PROTOCOL_KEY
