"""The behaviour of the SDK's types (spec/cog.md §2)."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Optional

import pytest

from vendo.sdk import (
    BaseModel,
    BasePredictor,
    CancelationException,
    Coder,
    FieldInfo,
    Input,
    Path,
    Secret,
    concurrent,
    current_scope,
    emit_metric,
    streaming,
)
from vendo.sdk.predictor import CONCURRENCY_ATTR, STREAMING_ATTR


def test_input_returns_field_info_and_rejects_other_keywords() -> None:
    info = Input(default=3, description="d", ge=1, le=5)
    assert isinstance(info, FieldInfo)
    assert (info.default, info.description, info.ge, info.le) == (3, "d", 1, 5)
    for keyword in ("title", "default_factory", "gt", "example"):
        with pytest.raises(TypeError):
            Input(**{keyword: 1})


def test_path_is_a_posix_path() -> None:
    path = Path("/tmp") / "x.txt"
    assert isinstance(path, pathlib.PosixPath)
    assert isinstance(path, Path)


def test_secret_hides_itself() -> None:
    secret = Secret("hunter2")
    assert str(secret) == "**********"
    assert "hunter2" not in repr(secret)
    assert secret.get_secret_value() == "hunter2"
    with pytest.raises(dataclasses.FrozenInstanceError):
        secret.secret_value = "x"  # type: ignore[misc]


def test_base_model_subclasses_are_dataclasses() -> None:
    class Out(BaseModel):
        text: str
        score: float = 0.5

    class Later(BaseModel):
        first: int = 1
        second: str  # no default after a default: keyword-only instead of an error

    assert dataclasses.is_dataclass(Out)
    assert Out(text="a") == Out(text="a", score=0.5)
    assert Later(second="x").first == 1


def test_cancelation_is_a_base_exception() -> None:
    assert issubclass(CancelationException, BaseException)
    assert not issubclass(CancelationException, Exception)


def test_streaming_both_forms() -> None:
    @streaming
    def a() -> None: ...

    @streaming()
    def b() -> None: ...

    assert getattr(a, STREAMING_ATTR) and getattr(b, STREAMING_ATTR)


def test_concurrent_rules() -> None:
    @concurrent(max=4)
    async def run() -> None: ...

    assert getattr(run, CONCURRENCY_ATTR) == 4
    with pytest.raises(TypeError, match="needs an async function"):

        @concurrent(max=2)
        def sync() -> None: ...

    for bad in (0, -1, 1.5, True):
        with pytest.raises(TypeError, match="integer >= 1"):
            concurrent(max=bad)  # type: ignore[arg-type]


def test_scope_outside_a_prediction_is_a_no_op(capsys: pytest.CaptureFixture[str]) -> None:
    scope = current_scope()
    scope.record_metric("anything", 1)
    assert dict(scope.metrics) == {}
    assert scope.context == {}
    BasePredictor().record_metric("x", 1)
    emit_metric("y", 2)
    emit_metric("y", 3)
    assert capsys.readouterr().err.count("deprecated") <= 1


def test_coder_registry() -> None:
    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

    class PointCoder(Coder):
        @staticmethod
        def factory(tpe: Any) -> Optional[Coder]:
            return PointCoder() if tpe is Point else None

        def encode(self, x: Any) -> dict:
            return {"x": x.x}

        def decode(self, x: dict) -> Any:
            return Point(x["x"])

    Coder.register(PointCoder)
    coder = Coder.lookup(Point)
    assert coder is not None
    assert coder.encode(Point(2)) == {"x": 2}
    assert coder.decode({"x": 3}).x == 3
    assert Coder.lookup(int) is None
