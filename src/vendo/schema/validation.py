"""Request validation driven by the OpenAPI ``Input`` schema (JSON only).

The parent validates requests without importing the model: it holds the stored
OpenAPI document, and :func:`validate_input` needs nothing else. Defaults are not
applied here; the child applies them from the signature.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "InputValidationError",
    "ValidatedInput",
    "ignored_inputs_warning",
    "validate_input",
    "validate_value",
]

Components = Mapping[str, Any]


class InputValidationError(ValueError):
    """One or more inputs are invalid; ``errors`` holds ``{loc, msg, type}`` entries."""

    def __init__(self, errors: List[Dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in errors))


class ValidatedInput(Dict[str, Any]):
    """The valid, coerced inputs; ``unknown`` names the keys that were dropped."""

    unknown: Tuple[str, ...] = ()


class _Invalid(Exception):
    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


def _error(name: str, msg: str) -> Dict[str, Any]:
    return {"loc": ["body", "input", name], "msg": msg, "type": "value_error"}


def _resolve(prop: Mapping[str, Any], components: Components) -> Dict[str, Any]:
    """Inline ``allOf: [{$ref}]`` (how choices are written) into one flat schema."""
    merged = {k: v for k, v in prop.items() if k != "allOf"}
    for part in prop.get("allOf", ()):
        ref = part.get("$ref", "")
        target = components.get(ref.rsplit("/", 1)[-1]) if ref else part
        if target is None:
            raise _Invalid(f"schema references unknown component {ref!r}")
        for key, value in _resolve(target, components).items():
            merged.setdefault(key, value)
    if "$ref" in prop:
        target = components.get(prop["$ref"].rsplit("/", 1)[-1], {})
        merged.pop("$ref")
        for key, value in _resolve(target, components).items():
            merged.setdefault(key, value)
    return merged


def _describe(values: Iterable[Any]) -> str:
    items = [repr(v) for v in values]
    return ", ".join(items[:-1]) + f" or {items[-1]}" if len(items) > 1 else "".join(items)


# Integers a model can take: the signed 64-bit range (what numpy, torch and most native
# code hold). Python's own ints have no bound, so a bare 10**400 would pass through.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")
_LONE_SURROGATE = (
    "String should not hold a lone UTF-16 surrogate (a \\ud800-\\udfff escape "
    "that is not part of a pair): it is not valid Unicode text"
)


def _check_json(value: Any) -> None:
    """What an ``object`` (or untyped) input holds: any JSON, but only valid text and
    finite numbers (it is stored, and sent to the model, as JSON)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise _Invalid(_LONE_SURROGATE)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise _Invalid("Input should hold only finite numbers")
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and _SURROGATE.search(key):
                    raise _Invalid(_LONE_SURROGATE)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


def _check_scalar(schema: Mapping[str, Any], value: Any) -> Any:
    kind = schema.get("type")
    if kind == "string":
        if not isinstance(value, str):
            raise _Invalid("Input should be a valid string")
        if _SURROGATE.search(value):
            raise _Invalid(_LONE_SURROGATE)
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise _Invalid(f"String should have at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise _Invalid(f"String should have at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.match(schema["pattern"], value):
            raise _Invalid(f"String should match pattern '{schema['pattern']}'")
    elif kind == "integer":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid("Input should be a valid integer")
        if not INT_MIN <= value <= INT_MAX:
            raise _Invalid(f"Input should be an integer from {INT_MIN} to {INT_MAX}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid("Input should be a valid number")
        try:
            value = float(value)
        except OverflowError:  # an int too large for a double (10**400)
            value = math.inf
        if not math.isfinite(value):
            raise _Invalid("Input should be a finite number (at most about 1.8e308)")
    elif kind == "boolean" and not isinstance(value, bool):
        raise _Invalid("Input should be a valid boolean")
    elif kind is None:
        _check_json(value)
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise _Invalid(f"Input should be greater than or equal to {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise _Invalid(f"Input should be less than or equal to {schema['maximum']}")
    if "enum" in schema and value not in schema["enum"]:
        raise _Invalid(f"Input should be {_describe(schema['enum'])}")
    return value


# The order unions try their arms in: the most specific JSON type first.
_SPECIFICITY = {"boolean": 0, "integer": 1, "number": 2, "string": 3, "array": 4, "object": 5}


def _check(schema: Mapping[str, Any], value: Any, components: Components) -> Any:
    schema = _resolve(schema, components)
    if value is None:
        if schema.get("nullable"):
            return None
        raise _Invalid("Input should not be null")
    if "anyOf" in schema:
        arms = sorted(
            (_resolve(a, components) for a in schema["anyOf"]),
            key=lambda a: _SPECIFICITY.get(a.get("type", ""), 9),
        )
        for arm in arms:
            try:
                return _check(arm, value, components)
            except _Invalid:
                continue
        kinds = [a.get("type", "object") for a in arms]
        raise _Invalid(f"Input should be one of: {', '.join(kinds)}")
    kind = schema.get("type")
    if kind == "array":
        if not isinstance(value, list):
            raise _Invalid("Input should be a valid list")
        items = schema.get("items", {})
        return [_check(items, item, components) for item in value]
    if kind == "object":
        if not isinstance(value, dict):
            raise _Invalid("Input should be a valid dictionary")
        _check_json(value)
        return value
    return _check_scalar(schema, value)


def validate_value(
    prop: Mapping[str, Any], value: Any, name: str, components: Optional[Components] = None
) -> Any:
    """Validate and coerce one input value against its ``Input`` property."""
    try:
        return _check(prop, value, components or {})
    except _Invalid as exc:
        raise InputValidationError([_error(name, exc.msg)]) from None


def validate_input(
    input_schema: Mapping[str, Any],
    payload: Mapping[str, Any],
    components: Optional[Components] = None,
) -> ValidatedInput:
    """Validate a request's ``input`` against the OpenAPI ``Input`` schema.

    ``components`` is the document's ``components.schemas`` (choices refer to enum
    components there). Unknown keys are dropped and named in ``result.unknown``;
    an explicit ``null`` on a nullable input becomes ``None``. Raises
    :class:`InputValidationError` listing every invalid field.
    """
    properties: Mapping[str, Any] = input_schema.get("properties", {})
    errors: List[Dict[str, Any]] = []
    result = ValidatedInput()
    unknown = []
    for name in input_schema.get("required", ()):
        if name not in payload:
            errors.append(_error(name, "Field required"))
    for name, value in payload.items():
        if name not in properties:
            unknown.append(name)
            continue
        try:
            result[name] = _check(properties[name], value, components or {})
        except _Invalid as exc:
            errors.append(_error(name, exc.msg))
    if errors:
        raise InputValidationError(errors)
    result.unknown = tuple(unknown)
    return result


def ignored_inputs_warning(unknown: Iterable[str], known: Iterable[str]) -> str:
    """The log lines that tell a prediction which of its inputs were ignored: one per
    name, with the closest known name when one is close (a typo), e.g.
    ``warning: input "txt" is not an input of this model and was ignored (did you mean
    "text"?)``. Empty when nothing was ignored. Ignoring them is what Cog does; saying
    so spares a run with the defaults and no word."""
    names = list(known)
    lines = []
    # sorted: the same lines whatever order the input arrived in (PostgreSQL's JSONB
    # does not keep the caller's key order)
    for name in sorted(unknown, key=lambda n: (n.lower(), n)):
        # quoted as JSON: a name holding quotes or newlines cannot forge a log line
        shown = json.dumps(name[:100], ensure_ascii=False)
        line = f"warning: input {shown} is not an input of this model and was ignored"
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        if not close:  # a different case is a typo too ("Text" for "text")
            close = [k for k in names if k.lower() == name.lower()][:1]
        if close:
            line += f" (did you mean {json.dumps(close[0], ensure_ascii=False)}?)"
        lines.append(line + "\n")
    return "".join(lines)
