"""Turn a validated ``input`` dict into the keyword arguments of ``run``."""

from __future__ import annotations

import copy
import io
from typing import Any, Dict, List, Tuple

from vendo.schema.openapi import enum_component, input_schema
from vendo.schema.records import FILE, FLOAT, LIST, OBJECT, PATH, SECRET, FieldType, PredictorInfo
from vendo.schema.validation import ignored_inputs_warning, validate_input
from vendo.sdk.coder import Coder
from vendo.sdk.types import Path, Secret, URLPath

__all__ = ["InputPreparer", "coerce"]


def coerce(ft: FieldType, value: Any, opened: List[io.IOBase]) -> Any:
    """Make a JSON value (or a default) the Python object the signature asks for."""
    if value is None:
        return None
    if ft.kind == PATH:
        if isinstance(value, Path):
            return value
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            # only defaults arrive as URLs: the parent downloads request inputs
            return URLPath.from_url(value).convert()
        return Path(value)
    if ft.kind == FILE:
        if isinstance(value, io.IOBase):
            return value
        handle = open(value, "rb")  # noqa: SIM115 - closed when the prediction ends
        opened.append(handle)
        return handle
    if ft.kind == SECRET:
        return value if isinstance(value, Secret) else Secret(value)
    if ft.kind == FLOAT and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if ft.kind == LIST and ft.items is not None and isinstance(value, list):
        return [coerce(ft.items, item, opened) for item in value]
    if ft.kind == OBJECT and ft.python is not None and not ft.opaque:
        coder = Coder.lookup(ft.python)
        if coder is not None and isinstance(value, dict):
            return coder.decode(value)
    return value


class InputPreparer:
    """Validates (again: the parent already did), applies defaults and coerces.

    Calling it raises :class:`~vendo.schema.validation.InputValidationError` for a bad
    payload; it returns the keyword arguments and the files it opened.
    """

    def __init__(self, info: PredictorInfo) -> None:
        self.info = info
        self.schema = input_schema(info)
        self.components = {f.name: enum_component(f) for f in info.inputs if f.choices}

    def ignored(self, payload: Dict[str, Any]) -> str:
        """The warning lines naming the inputs of ``payload`` this model does not have
        (empty when none). The parent passes such names on (valued null) for this."""
        known = self.schema.get("properties") or {}
        unknown = [name for name in payload if name not in known]
        return ignored_inputs_warning(unknown, known) if unknown else ""

    def __call__(self, payload: Dict[str, Any]) -> Tuple[Dict[str, Any], List[io.IOBase]]:
        values = validate_input(self.schema, payload, self.components)
        opened: List[io.IOBase] = []
        kwargs: Dict[str, Any] = {}
        for field in self.info.inputs:
            # a mutable default must not leak state from one prediction to the next
            value = values[field.name] if field.name in values else copy.copy(field.default)
            kwargs[field.name] = coerce(field.type, value, opened)
        return kwargs, opened
