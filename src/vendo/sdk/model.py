"""``cog.BaseModel``: output records without pydantic (``cog.model``)."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["BaseModel"]


class BaseModel:
    """Subclasses become dataclasses, so ``Output(text="hi")`` just works.

    Fields without defaults may follow fields with defaults (as pydantic allowed):
    such classes become keyword-only dataclasses instead of failing.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__dataclass_fields__" in cls.__dict__:
            return
        try:
            dataclasses.dataclass(cls)
        except TypeError as exc:
            if "follows default argument" not in str(exc):
                raise
            dataclasses.dataclass(kw_only=True)(cls)
