"""spec/cog.md §1, §3, §4 load-time rules: each break is a LoadError naming the rule."""

from __future__ import annotations

import re
from typing import Annotated, Any, AsyncIterator, Dict, Iterator, List, Optional, TypedDict, Union

import pytest

from vendo.schema import LoadError, inspect_predictor
from vendo.schema.inspector import inspect_setup
from vendo.sdk import (
    BaseModel,
    ConcatenateIterator,
    File,
    Input,
    Opaque,
    Path,
    Secret,
)


def inspect(fn: Any) -> Any:
    return inspect_predictor(fn, "run", is_method=False)


def fails(fn: Any, message: str) -> None:
    with pytest.raises(LoadError, match=re.escape(message)):
        inspect(fn)


def test_input_rejects_unknown_keywords() -> None:
    with pytest.raises(TypeError):
        Input(title="Prompt")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Input(default_factory=list)  # type: ignore[call-arg]


def test_signature_shape_rules() -> None:
    def star_args(*args: int) -> str: ...
    def star_kwargs(**kwargs: int) -> str: ...
    def keyword_only(*, a: int) -> str: ...
    def unannotated(a) -> str: ...  # type: ignore[no-untyped-def]
    def no_return(a: int): ...  # type: ignore[no-untyped-def]

    fails(star_args, "run() must not have *args")
    fails(star_kwargs, "run() must not have **kwargs")
    fails(keyword_only, "run() must not have keyword-only parameter 'a'")
    fails(unannotated, "run() parameter 'a' has no type annotation")
    fails(no_return, "run() must have a return type annotation")


class _Setups:
    def extra(self, weights: Optional[str], other: int) -> None: ...
    def returns(self) -> int: ...
    def fine(self, weights: Optional[Path] = None) -> None: ...


def test_setup_rules() -> None:
    def run() -> str: ...

    with pytest.raises(LoadError, match="setup\\(\\) parameter 'other' is required"):
        inspect_setup(_Setups.extra, inspect(run), is_method=True)
    with pytest.raises(LoadError, match="setup\\(\\) must return None"):
        inspect_setup(_Setups.returns, inspect(run), is_method=True)
    info = inspect(run)
    inspect_setup(_Setups.fine, info, is_method=True)
    assert info.setup_weights and info.weights_type is not None


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (Input(ge=1), "input 'x': ge/le only apply to int and float inputs"),
        (Input(min_length=1), "input 'x': min_length/max_length/regex only apply to str"),
        (Input(regex="a"), "min_length/max_length/regex only apply to str"),
        (Input(choices=[1.5, 2.5]), "choices only apply to str and int inputs"),
    ],
)
def test_constraints_on_the_wrong_type(field: Any, message: str) -> None:
    def run(x: float = field) -> str: ...

    if "ge/le" in message:

        def run(x: str = field) -> str: ...  # type: ignore[no-redef]

    fails(run, message)


def test_choice_rules() -> None:
    def one(x: str = Input(choices=["a"])) -> str: ...
    def mixed(x: int = Input(choices=[1, 2], ge=0)) -> str: ...
    def lengths(x: str = Input(choices=["a", "b"], max_length=3)) -> str: ...
    def other_type(x: str = Input(choices=["a", 2])) -> str: ...
    def bad_default(x: str = Input(default="c", choices=["a", "b"])) -> str: ...

    fails(one, "choices must list at least 2 values")
    fails(mixed, "choices cannot be combined with ge/le or lengths")
    fails(lengths, "choices cannot be combined with ge/le or lengths")
    fails(other_type, "choice 2 is not a str like the input")
    fails(bad_default, "default 'c' is invalid: Input should be 'a' or 'b'")


def test_defaults_must_meet_constraints() -> None:
    def low(x: int = Input(default=0, ge=1)) -> str: ...
    def long(x: str = Input(default="abcd", max_length=3)) -> str: ...
    def pattern(x: str = Input(default="A", regex="^[a-z]$")) -> str: ...

    fails(low, "input 'x': default 0 is invalid: Input should be greater than or equal to 1")
    fails(long, "String should have at most 3 characters")
    fails(pattern, "String should match pattern '^[a-z]$'")


def test_input_type_rules() -> None:
    def path_union(x: Union[Path, str]) -> str: ...
    def secret_union(x: Union[Secret, int]) -> str: ...
    def nested(x: List[List[str]]) -> str: ...
    def optional_items(x: List[Optional[str]]) -> str: ...
    def model_input(x: _Out) -> str: ...

    fails(path_union, "unions may only combine str, int, float, bool, dict and list types")
    fails(secret_union, "unions may only combine")
    fails(nested, "nested generic")
    fails(optional_items, "nested generic")
    fails(model_input, "BaseModel types are not supported as inputs")


class _Out(BaseModel):
    text: str


class _Nested(BaseModel):
    inner: _Out


class _TD(TypedDict):
    a: int


def test_output_type_rules() -> None:
    def optional() -> Optional[str]: ...
    def union() -> Union[str, int]: ...
    def optional_items() -> Iterator[Optional[str]]: ...
    def list_items() -> Iterator[List[str]]: ...
    def concat_int() -> ConcatenateIterator[int]: ...
    def nested_model() -> _Nested: ...

    fails(optional, "the output type must not be Optional")
    fails(union, "the output type must not be a union")
    fails(optional_items, "iterator items must not be Optional")
    fails(list_items, "iterator items must not be lists or unions")
    fails(concat_int, "ConcatenateIterator items must be str")
    fails(nested_model, "must not be BaseModel types")


def test_allowed_outputs() -> None:
    def anything() -> Any: ...
    def typed_dict() -> _TD: ...
    def opaque() -> Annotated[Dict[str, Any], Opaque]: ...
    def files() -> List[File]: ...

    async def stream() -> AsyncIterator[str]:
        yield ""

    info = inspect(anything)
    assert info.warnings and "Any" in info.warnings[0]
    assert inspect(typed_dict).output.type.kind == "object"
    assert inspect(opaque).output.type.opaque
    assert inspect(files).output.type.items.kind == "file"  # type: ignore[union-attr]
    streamed = inspect(stream)
    assert streamed.is_async and streamed.is_generator and streamed.output.iterator


def test_required_rules() -> None:
    def run(
        a: int = Input(default=None),
        b: Secret = Input(default=None),
        c: Optional[int] = None,
        d: Optional[str] = Input(),
        e: str = "x",
        f: str = Input(description="no default"),
    ) -> str: ...

    info = inspect(run)
    # a None default makes even a plain int optional (spec/cog.md §3)
    assert [i.name for i in info.inputs if i.required] == ["f"]
    assert info.defaults() == {"a": None, "b": None, "c": None, "d": None, "e": "x"}
