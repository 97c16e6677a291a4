"""``BasePredictor``/``BaseRunner`` and the decorators on ``run`` (``cog.predictor``)."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional, TypeVar, overload

from .scope import Scope, current_scope

__all__ = ["BasePredictor", "BaseRunner", "concurrent", "streaming"]

_F = TypeVar("_F", bound=Callable[..., Any])

STREAMING_ATTR = "_cog_streaming"
CONCURRENCY_ATTR = "_cog_max_concurrency"


class BaseRunner:
    """Optional base class of a model: define ``setup`` and ``run``."""

    def setup(self) -> None:
        """Load the model once per process."""

    @property
    def scope(self) -> Scope:
        return current_scope()

    def record_metric(self, key: str, value: Any, mode: str = "replace") -> None:
        current_scope().record_metric(key, value, mode)


class BasePredictor(BaseRunner):
    """The older name of :class:`BaseRunner`; subclasses define ``predict`` or ``run``."""


@overload
def streaming(fn: _F) -> _F: ...


@overload
def streaming(fn: None = None) -> Callable[[_F], _F]: ...


def streaming(fn: Optional[_F] = None) -> Any:
    """Mark ``run`` as able to stream over SSE: ``@streaming`` or ``@streaming()``."""

    def mark(target: _F) -> _F:
        setattr(target, STREAMING_ATTR, True)
        return target

    return mark(fn) if fn is not None else mark


def concurrent(max: int = 1) -> Callable[[_F], _F]:  # noqa: A002 - Cog's keyword
    """Allow up to ``max`` predictions at once; only async functions may exceed 1."""
    if isinstance(max, bool) or not isinstance(max, int) or max < 1:
        raise TypeError(f"concurrent(max=...) must be an integer >= 1, got {max!r}")

    def mark(target: _F) -> _F:
        is_async = inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)
        if max > 1 and not is_async:
            raise TypeError(
                f"concurrent(max={max}) needs an async function; "
                f"{getattr(target, '__name__', target)!r} is synchronous"
            )
        setattr(target, CONCURRENCY_ATTR, max)
        return target

    return mark
