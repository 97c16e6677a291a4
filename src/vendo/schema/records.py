"""The typed model of a predictor's signature, built once by the inspector.

The OpenAPI document, the child's input coercion and the output rules all read these
records, never the Python signature again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

__all__ = [
    "FieldType",
    "InputField",
    "LoadError",
    "OutputType",
    "PredictorInfo",
]

# FieldType.kind values
STR, INT, FLOAT, BOOL = "str", "int", "float", "bool"
PATH, FILE, SECRET = "path", "file", "secret"
OBJECT, LIST, UNION, MODEL = "object", "list", "union", "model"


class LoadError(ValueError):
    """The predictor cannot be loaded: its signature or an ``Input()`` breaks a rule."""


@dataclass(frozen=True)
class FieldType:
    """One annotation, normalised.

    ``items`` is the element of a ``list``, ``members`` the arms of a union,
    ``value`` the value type of ``dict[str, V]``, ``fields`` the typed fields of a
    record output (``cog.BaseModel``, pydantic model, TypedDict) and ``python`` the
    class the value should become in the child (``cog.Path``, a coder's type...).
    """

    kind: str
    nullable: bool = False
    items: Optional[FieldType] = None
    members: Tuple[FieldType, ...] = ()
    value: Optional[FieldType] = None
    fields: Tuple[Tuple[str, FieldType, bool], ...] = ()
    python: Any = None
    opaque: bool = False


@dataclass(frozen=True)
class InputField:
    name: str
    order: int
    type: FieldType
    required: bool
    default: Any = None
    has_default: bool = False
    description: Optional[str] = None
    ge: Optional[float] = None
    le: Optional[float] = None
    min_length: Optional[int] = None
    max_length: Optional[int] = None
    regex: Optional[str] = None
    choices: Optional[List[Any]] = None
    deprecated: Optional[bool] = None
    accept: Optional[str] = None


@dataclass(frozen=True)
class OutputType:
    type: FieldType
    iterator: bool = False
    concatenate: bool = False


@dataclass
class PredictorInfo:
    """Everything the runtime needs to know about one ``run``/``predict``/``train``."""

    method: str
    inputs: List[InputField]
    output: OutputType
    is_async: bool = False
    is_generator: bool = False
    streaming: bool = False
    max_concurrency: Optional[int] = None
    setup_weights: bool = False
    weights_type: Optional[FieldType] = None
    warnings: List[str] = field(default_factory=list)

    def input(self, name: str) -> Optional[InputField]:
        for item in self.inputs:
            if item.name == name:
                return item
        return None

    def defaults(self) -> Dict[str, Any]:
        return {i.name: i.default for i in self.inputs if not i.required}
