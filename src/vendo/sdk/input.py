"""``Input()``: the options of one predictor input (``cog.input``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Union

__all__ = ["FieldInfo", "Input"]


@dataclass(frozen=True)
class FieldInfo:
    """What ``Input(...)`` returns; the inspector reads it from the parameter default.

    ``default`` is ``...`` (Ellipsis) when ``Input()`` was given none, as in Cog: the
    input is then required, while an explicit ``default=None`` makes it optional.
    """

    default: Any = ...
    description: Optional[str] = None
    ge: Optional[Union[int, float]] = None
    le: Optional[Union[int, float]] = None
    min_length: Optional[int] = None
    max_length: Optional[int] = None
    regex: Optional[str] = None
    choices: Optional[List[Union[str, int]]] = None
    deprecated: Optional[bool] = None
    accept: Optional[str] = None


def Input(  # noqa: N802 - Cog's public name
    default: Any = ...,
    *,
    description: Optional[str] = None,
    ge: Optional[Union[int, float]] = None,
    le: Optional[Union[int, float]] = None,
    min_length: Optional[int] = None,
    max_length: Optional[int] = None,
    regex: Optional[str] = None,
    choices: Optional[List[Union[str, int]]] = None,
    deprecated: Optional[bool] = None,
    accept: Optional[str] = None,
) -> Any:
    """Describe one input. Any other keyword (``title``, ``default_factory``) is a TypeError."""
    return FieldInfo(
        default=default,
        description=description,
        ge=ge,
        le=le,
        min_length=min_length,
        max_length=max_length,
        regex=regex,
        choices=list(choices) if choices is not None else None,
        deprecated=deprecated,
        accept=accept,
    )
