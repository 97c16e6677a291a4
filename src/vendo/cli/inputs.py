"""``-i name=value`` and ``--json`` inputs, shared by ``vendo predict`` and ``vendo run``.

Values are typed from the model's OpenAPI ``Input`` properties so that ``-i steps=20``
sends the integer 20. What cannot be converted is sent as the string it was, so that
validation (local or the server's) names the input and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

__all__ = ["coerce", "parse_inputs"]

_TRUE = ("true", "1", "yes", "y")
_FALSE = ("false", "0", "no", "n")


def coerce(prop: dict[str, Any], raw: str) -> Any:
    """A command-line string as the JSON type ``prop`` asks for."""
    kind = prop.get("type")
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        return raw
    if kind == "boolean":
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        return raw
    if kind in ("array", "object") or "anyOf" in prop:
        try:
            return json.loads(raw)
        except ValueError:
            return [raw] if kind == "array" else raw
    return raw


def parse_inputs(
    pairs: tuple[str, ...],
    json_input: str | None,
    props: dict[str, Any],
    file_value: Callable[[str], Any],
) -> dict[str, Any]:
    """The prediction's input from ``--json`` and ``-i`` pairs (``-i`` wins).

    ``name=@path`` passes ``path`` through ``file_value`` (a local path for ``predict``,
    an uploaded file's URL for ``run``). A list input takes one value per ``-i`` (repeat
    the name), or a whole JSON array at once.
    """
    payload: dict[str, Any] = {}
    if json_input:
        try:
            loaded = json.loads(json_input)
        except ValueError as exc:
            raise click.UsageError(f"--json is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise click.UsageError("--json must be a JSON object of inputs")
        payload.update(loaded)
    repeated: set[str] = set()
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise click.UsageError(f"-i takes name=value or name=@file, got {pair!r}")
        prop = props.get(name, {})
        is_file = raw.startswith("@")
        if prop.get("type") != "array":
            payload[name] = file_value(raw[1:]) if is_file else coerce(prop, raw)
            continue
        if name not in repeated:
            payload[name] = []
            repeated.add(name)
        if is_file:
            payload[name].append(file_value(raw[1:]))
            continue
        whole = coerce(prop, raw)
        if raw.lstrip().startswith("[") and isinstance(whole, list):
            payload[name].extend(whole)
        else:
            payload[name].append(coerce(prop.get("items", {}), raw))
    return payload
