"""Predictor signature -> :class:`~vendo.schema.records.PredictorInfo`.

Every rule of spec/cog.md §1, §3 and §4 that can be checked at load time is checked
here, and each failure is a :class:`LoadError` naming the function, the input and the
rule it broke.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import io
import os
import re
import sys
import types
import typing
from typing import Any, Callable, Dict, List, Optional, Tuple

from vendo.sdk.coder import Coder
from vendo.sdk.input import FieldInfo
from vendo.sdk.model import BaseModel
from vendo.sdk.predictor import CONCURRENCY_ATTR, STREAMING_ATTR
from vendo.sdk.types import AsyncConcatenateIterator, ConcatenateIterator, Opaque, Secret

from .openapi import enum_component, input_property
from .records import (
    BOOL,
    FILE,
    FLOAT,
    INT,
    LIST,
    MODEL,
    OBJECT,
    PATH,
    SECRET,
    STR,
    UNION,
    FieldType,
    InputField,
    LoadError,
    OutputType,
    PredictorInfo,
)
from .validation import InputValidationError, validate_value

__all__ = ["inspect_predictor", "inspect_setup", "resolve_type"]

_SCALARS: Dict[Any, str] = {str: STR, int: INT, float: FLOAT, bool: BOOL}
_ITERATORS = (
    collections.abc.Iterator,
    collections.abc.Iterable,
    collections.abc.Generator,
)
_ASYNC_ITERATORS = (
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncGenerator,
)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


def _is_union(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    # types.UnionType (``X | Y``) is 3.10+; before that the getattr gives None, and
    # every plain type's origin is None too.
    return origin is not None and origin in (typing.Union, getattr(types, "UnionType", None))


def _type_hints(obj: Any) -> Dict[str, Any]:
    # include_extras (keep Annotated[...]) arrived in 3.9; 3.8 never strips it.
    if sys.version_info >= (3, 9):  # noqa: UP036 - the runtime runs on 3.8 too
        return typing.get_type_hints(obj, include_extras=True)
    return typing.get_type_hints(obj)


def _annotated(tp: Any) -> Optional[Tuple[Any, Tuple[Any, ...]]]:
    """``(T, metadata)`` for ``Annotated[T, ...]``: typing's (3.9+) or typing_extensions'."""
    meta = getattr(tp, "__metadata__", None)
    if not isinstance(meta, tuple) or not hasattr(tp, "__origin__"):
        return None
    return tp.__origin__, meta


def _is_typeddict(tp: type) -> bool:
    # typing.is_typeddict is 3.10+; a TypedDict class is a dict subclass with __total__.
    return issubclass(tp, dict) and hasattr(tp, "__total__") and hasattr(tp, "__annotations__")


def _is_record(tp: Any) -> bool:
    if not isinstance(tp, type):
        return False
    if issubclass(tp, BaseModel) or dataclasses.is_dataclass(tp):
        return True
    # pydantic models, recognised without importing pydantic
    return hasattr(tp, "model_fields") or hasattr(tp, "__fields__")


def _record_fields(tp: Any, where: str, output: bool) -> Tuple[Tuple[str, FieldType, bool], ...]:
    try:
        hints = _type_hints(tp)
    except Exception as exc:
        name = _type_name(tp)
        raise LoadError(f"{where}: cannot resolve the annotations of {name}: {exc}") from exc
    required: Dict[str, bool] = {}
    if dataclasses.is_dataclass(tp):
        for f in dataclasses.fields(tp):
            required[f.name] = (
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            )
        names = list(required)
    else:
        model_fields = getattr(tp, "model_fields", None) or getattr(tp, "__fields__", {})
        names = list(model_fields) or [n for n in hints if not n.startswith("_")]
        for name in names:
            info = model_fields.get(name) if isinstance(model_fields, dict) else None
            is_required = getattr(info, "is_required", None)
            required[name] = bool(is_required()) if callable(is_required) else True
    fields = []
    for name in names:
        if name not in hints or typing.get_origin(hints[name]) is typing.ClassVar:
            continue
        field_type = resolve_type(hints[name], f"{where}: field {name!r}", output=output)
        if field_type.kind == MODEL:
            raise LoadError(
                f"{where}: field {name!r} of {_type_name(tp)} is itself a model; "
                "fields of an output model must not be BaseModel types"
            )
        fields.append((name, field_type, required[name]))
    return tuple(fields)


def resolve_type(tp: Any, where: str, *, output: bool = False) -> FieldType:
    """Normalise one annotation (input or output element) into a :class:`FieldType`.

    ``output``: nested generics (``list[list[float]]``, ``dict[str, dict[str, int]]``)
    are allowed and described in full, as Cog's output schemas do; inputs reject them.
    """
    annotated = _annotated(tp)
    if annotated is not None:
        inner, meta = annotated
        if any(m is Opaque or isinstance(m, Opaque) for m in meta):
            return FieldType(OBJECT, python=inner, opaque=True)
        return resolve_type(inner, where, output=output)
    if tp is typing.Any or tp is object:
        return FieldType(OBJECT)
    if _is_union(tp):
        return _resolve_union(tp, where, output)
    origin = typing.get_origin(tp)
    if tp is list or origin in (list, typing.List):
        return _resolve_list(tp, where, output)
    if tp is dict or origin in (dict, typing.Dict):
        args = typing.get_args(tp)
        value = resolve_type(args[1], where, output=output) if len(args) == 2 else None
        if (
            value is not None
            and value.kind == OBJECT
            and value.python is None
            and value.value is None
        ):
            value = None  # dict[str, Any] and dict[str, dict]: any object
        return FieldType(OBJECT, value=value)
    if tp in _SCALARS:
        return FieldType(_SCALARS[tp], python=tp)
    if isinstance(tp, type):
        resolved = _resolve_class(tp, where, output)
        if resolved is not None:
            return resolved
    raise LoadError(f"{where}: unsupported type {tp!r}")


def _resolve_union(tp: Any, where: str, output: bool) -> FieldType:
    """``Optional[X]`` is X made nullable; a real union may only join JSON types, since a
    value must say by itself which member it is."""
    args = typing.get_args(tp)
    members = [a for a in args if a is not type(None)]
    nullable = len(members) < len(args)
    if len(members) == 1:
        inner = resolve_type(members[0], where, output=output)
        return dataclasses.replace(inner, nullable=nullable)
    resolved = tuple(resolve_type(m, where) for m in members)
    for member in resolved:
        if member.kind in (PATH, FILE, SECRET, MODEL) or (
            member.kind == OBJECT and member.python is not None
        ):
            raise LoadError(
                f"{where}: unions may only combine str, int, float, bool, dict and "
                f"list types, not {_type_name(member.python) or member.kind}"
            )
        if (
            member.kind == LIST
            and member.items is not None
            and member.items.kind
            in (
                PATH,
                FILE,
                SECRET,
            )
        ):
            raise LoadError(f"{where}: unions must not contain lists of files or secrets")
    return FieldType(UNION, nullable=nullable, members=resolved)


def _resolve_list(tp: Any, where: str, output: bool) -> FieldType:
    args = typing.get_args(tp)
    if not args:
        return FieldType(LIST, items=FieldType(OBJECT))
    item = resolve_type(args[0], where, output=output)
    if item.kind == UNION or (not output and (item.kind == LIST or item.nullable)):
        raise LoadError(
            f"{where}: nested generic {tp!r} is not supported; list items must be a plain type"
        )
    return FieldType(LIST, items=item)


def _resolve_class(tp: type, where: str, output: bool) -> Optional[FieldType]:
    """Cog's special types, typed dicts, records (BaseModel, dataclass) and types with
    a registered coder; None for any other class."""
    if issubclass(tp, Secret):
        return FieldType(SECRET, python=tp)
    if issubclass(tp, io.IOBase):
        return FieldType(FILE, python=tp)
    if issubclass(tp, os.PathLike):
        return FieldType(PATH, python=tp)
    if _is_typeddict(tp):
        return FieldType(OBJECT)
    if _is_record(tp):
        return FieldType(MODEL, python=tp, fields=_record_fields(tp, where, output))
    if Coder.lookup(tp) is not None:
        return FieldType(OBJECT, python=tp)
    return None


def _scalar(ft: FieldType) -> FieldType:
    return ft.items if ft.kind == LIST and ft.items is not None else ft


def _check_constraints(fn_name: str, field: InputField) -> None:
    where = f"{fn_name}(): input {field.name!r}"
    scalar = _scalar(field.type)
    if (field.ge is not None or field.le is not None) and scalar.kind not in (INT, FLOAT):
        raise LoadError(f"{where}: ge/le only apply to int and float inputs")
    lengths = field.min_length is not None or field.max_length is not None
    if (lengths or field.regex is not None) and scalar.kind != STR:
        raise LoadError(f"{where}: min_length/max_length/regex only apply to str inputs")
    if field.regex is not None:
        try:
            re.compile(field.regex)
        except re.error as exc:
            raise LoadError(f"{where}: regex {field.regex!r} does not compile: {exc}") from exc
    if field.choices is not None:
        if scalar.kind not in (STR, INT) or field.type.kind == LIST:
            raise LoadError(f"{where}: choices only apply to str and int inputs")
        if len(field.choices) < 2:
            raise LoadError(f"{where}: choices must list at least 2 values")
        if field.ge is not None or field.le is not None or lengths:
            raise LoadError(f"{where}: choices cannot be combined with ge/le or lengths")
        expected = str if scalar.kind == STR else int
        for choice in field.choices:
            if isinstance(choice, bool) or not isinstance(choice, expected):
                raise LoadError(
                    f"{where}: choice {choice!r} is not a {expected.__name__} like the input"
                )


def _check_default(fn_name: str, field: InputField) -> None:
    # The default is checked with the same code that checks requests.
    if not field.has_default or field.default is None:
        return
    value = _json_default(field.default)
    try:
        components = {field.name: enum_component(field)} if field.choices is not None else {}
        validate_value(input_property(field), value, field.name, components)
    except InputValidationError as exc:
        msg = exc.errors[0]["msg"] if exc.errors else str(exc)
        raise LoadError(
            f"{fn_name}(): input {field.name!r}: default {field.default!r} is invalid: {msg}"
        ) from None


def _json_default(value: Any) -> Any:
    if isinstance(value, Secret):
        return value.get_secret_value()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_json_default(v) for v in value]
    return value


def _input_field(fn_name: str, order: int, param: inspect.Parameter, tp: Any) -> InputField:
    where = f"{fn_name}(): input {param.name!r}"
    field_type = resolve_type(tp, where)
    if field_type.kind == MODEL:
        raise LoadError(f"{where}: BaseModel types are not supported as inputs")
    info = param.default if isinstance(param.default, FieldInfo) else None
    if info is None:
        has_default = param.default is not inspect.Parameter.empty
        info = FieldInfo(default=param.default if has_default else ...)
    # An explicit None default makes even a non-Optional input optional: the model
    # gets None when it is omitted (Cog's runtime; earlier Cog schemas said so too).
    given = info.default is not ...
    default = info.default if given else None
    required = not (given or field_type.nullable or field_type.kind == SECRET)
    field = InputField(
        name=param.name,
        order=order,
        type=field_type,
        required=required,
        default=default,
        has_default=default is not None,
        description=info.description,
        ge=info.ge,
        le=info.le,
        min_length=info.min_length,
        max_length=info.max_length,
        regex=info.regex,
        choices=info.choices,
        deprecated=info.deprecated,
        accept=info.accept,
    )
    _check_constraints(fn_name, field)
    _check_default(fn_name, field)
    return field


def _hints(fn: Callable[..., Any], fn_name: str) -> Dict[str, Any]:
    try:
        return _type_hints(fn)
    except Exception as exc:
        raise LoadError(f"{fn_name}(): cannot resolve type annotations: {exc}") from exc


def _params(fn: Callable[..., Any], fn_name: str, is_method: bool) -> List[inspect.Parameter]:
    params = list(inspect.signature(fn).parameters.values())
    if is_method and params:
        params = params[1:]
    for param in params:
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            raise LoadError(f"{fn_name}() must not have *args")
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            raise LoadError(f"{fn_name}() must not have **kwargs")
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            raise LoadError(f"{fn_name}() must not have keyword-only parameter {param.name!r}")
    return params


def _output(fn_name: str, tp: Any) -> Tuple[OutputType, List[str]]:
    where = f"{fn_name}() output"
    warnings: List[str] = []
    origin = typing.get_origin(tp)
    concatenate = False
    element: Any = None
    if isinstance(origin, type) and issubclass(
        origin, (ConcatenateIterator, AsyncConcatenateIterator)
    ):
        concatenate = True
        element = (typing.get_args(tp) or (str,))[0]
    elif tp in (ConcatenateIterator, AsyncConcatenateIterator):
        concatenate, element = True, str
    elif origin in _ITERATORS or origin in _ASYNC_ITERATORS:
        element = (typing.get_args(tp) or (typing.Any,))[0]
    if element is not None:
        item = resolve_type(element, where, output=True)
        if concatenate and item.kind != STR:
            raise LoadError(f"{where}: ConcatenateIterator items must be str, not {element!r}")
        if item.nullable:
            raise LoadError(f"{where}: iterator items must not be Optional")
        if item.kind in (LIST, UNION):
            raise LoadError(f"{where}: iterator items must not be lists or unions")
        return OutputType(item, iterator=True, concatenate=concatenate), warnings
    if tp is typing.Any:
        warnings.append(f"{where}: Any gives clients no output schema; annotate a concrete type")
    output = resolve_type(tp, where, output=True)
    if output.nullable:
        raise LoadError(f"{where}: the output type must not be Optional")
    if output.kind == UNION:
        raise LoadError(f"{where}: the output type must not be a union")
    return OutputType(output), warnings


def inspect_predictor(
    fn: Callable[..., Any], method: str, *, is_method: bool = True
) -> PredictorInfo:
    """Inspect ``run``/``predict``/``train`` (a function, or a method taken from its class)."""
    hints = _hints(fn, method)
    params = _params(fn, method, is_method)
    inputs = []
    for order, param in enumerate(params):
        if param.name not in hints:
            raise LoadError(f"{method}() parameter {param.name!r} has no type annotation")
        inputs.append(_input_field(method, order, param, hints[param.name]))
    if "return" not in hints:
        raise LoadError(f"{method}() must have a return type annotation")
    is_async = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
    is_generator = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
    output, warnings = _output(method, hints["return"])
    if is_generator and not output.iterator:
        raise LoadError(f"{method}() yields, so its return type must be an Iterator")
    max_concurrency = getattr(fn, CONCURRENCY_ATTR, None)
    return PredictorInfo(
        method=method,
        inputs=inputs,
        output=output,
        is_async=is_async,
        is_generator=is_generator,
        streaming=bool(getattr(fn, STREAMING_ATTR, False)),
        max_concurrency=max_concurrency,
        warnings=warnings,
    )


def inspect_setup(setup: Callable[..., Any], info: PredictorInfo, *, is_method: bool) -> None:
    """Check ``setup(self[, weights])`` and note in ``info`` how weights are passed."""
    params = list(inspect.signature(setup).parameters.values())
    if is_method and params:
        params = params[1:]
    for param in params:
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            raise LoadError("setup() must not have *args")
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            raise LoadError("setup() must not have **kwargs")
        if param.name == "weights":
            info.setup_weights = True
            continue
        if param.default is inspect.Parameter.empty:
            raise LoadError(f"setup() parameter {param.name!r} is required; only 'weights' may be")
    hints = _hints(setup, "setup")
    ret = hints.get("return", None)
    if "return" in hints and ret is not type(None) and ret is not None:
        raise LoadError(f"setup() must return None, not {ret!r}")
    if info.setup_weights and "weights" in hints:
        weights = resolve_type(hints["weights"], "setup(): weights")
        if weights.kind in (PATH, FILE):
            info.weights_type = weights
