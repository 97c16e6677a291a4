"""``cog.BaseModel``: output records without pydantic (``cog.model``)."""

from __future__ import annotations

import dataclasses
import sys
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
            if sys.version_info >= (3, 10):  # noqa: UP036 - the runtime runs on 3.8 too
                dataclasses.dataclass(kw_only=True)(cls)
                return
            # kw_only dataclasses are 3.10+: give the reason, not dataclasses' error.
            raise TypeError(
                f"{cls.__name__}: a field without a default follows one with a default; "
                "on Python < 3.10 give it a default or move it up"
            ) from exc
