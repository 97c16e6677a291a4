"""``current_scope()``: the running prediction's metrics and context.

The runner sets a :class:`Scope` in a context variable around each prediction; outside
one, :func:`current_scope` returns a scope whose recordings go nowhere.

Metric keys (spec/cog.md §5): at most 128 characters and 4 dot-separated segments
(dots nest: ``a.b`` becomes ``{"a": {"b": ...}}``); each segment starts with a letter,
ends with a letter or digit and has no ``__``; ``predict_time`` and ``cog.*`` are reserved.
"""

from __future__ import annotations

import contextvars
import re
from typing import Any, Callable, Dict, Iterator, List, Mapping, MutableMapping, Optional

__all__ = [
    "MetricError",
    "Metrics",
    "Scope",
    "current_scope",
    "reset_scope",
    "set_scope",
]

MODES = ("replace", "incr", "append")
_SEGMENT = re.compile(r"^[A-Za-z]([A-Za-z0-9_]*[A-Za-z0-9])?$")
_RESERVED = ("predict_time",)

MetricSink = Callable[[str, Any, str], None]


class MetricError(ValueError):
    """A metric name, value or mode broke a rule."""


def check_key(key: str) -> List[str]:
    if not isinstance(key, str) or not key:
        raise MetricError(f"metric name must be a non-empty string, got {key!r}")
    if len(key) > 128:
        raise MetricError(f"metric name {key!r} is longer than 128 characters")
    if key in _RESERVED or key == "cog" or key.startswith("cog."):
        raise MetricError(f"metric name {key!r} is reserved")
    segments = key.split(".")
    if len(segments) > 4:
        raise MetricError(f"metric name {key!r} has more than 4 dot-separated segments")
    for segment in segments:
        if "__" in segment:
            raise MetricError(f"metric name {key!r} must not contain '__'")
        if not _SEGMENT.match(segment):
            raise MetricError(
                f"metric name {key!r}: each segment must start with a letter and end "
                "with a letter or digit"
            )
    return segments


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    if value is None:
        return "null"
    raise MetricError(f"metric value of type {type(value).__name__} is not JSON")


class Metrics(MutableMapping[str, Any]):
    """A prediction's metrics: ``m["k"] = v``, ``del m["k"]``, ``m.record(k, v, mode=)``."""

    def __init__(self, sink: Optional[MetricSink] = None) -> None:
        self._values: Dict[str, Any] = {}
        self._sink = sink

    def record(self, key: str, value: Any, mode: str = "replace") -> None:
        if mode not in MODES:
            raise MetricError(f"metric mode must be one of {', '.join(MODES)}, got {mode!r}")
        segments = check_key(key)
        if mode == "replace" and value is None:
            self._delete(segments)
            self._emit(key, None, mode)
            return
        kind = _kind(value)
        parent = self._values
        for segment in segments[:-1]:
            child = parent.get(segment)
            if child is None:
                child = parent[segment] = {}
            elif not isinstance(child, dict):
                raise MetricError(f"metric {key!r}: {segment!r} already holds a value")
            parent = child
        leaf = segments[-1]
        old = parent.get(leaf)
        if mode == "incr":
            if kind != "number":
                raise MetricError(f"metric {key!r}: incr needs a number, got {value!r}")
            if old is not None and _kind(old) != "number":
                raise MetricError(f"metric {key!r} holds a {_kind(old)}; delete it first")
            parent[leaf] = (old or 0) + value
        elif mode == "append":
            if old is None:
                parent[leaf] = [value]
            elif isinstance(old, list):
                old.append(value)
            else:
                raise MetricError(f"metric {key!r} holds a {_kind(old)}; delete it first")
        else:
            if old is not None and _kind(old) != kind:
                raise MetricError(
                    f"metric {key!r} changes type from {_kind(old)} to {kind}; delete it first"
                )
            parent[leaf] = value
        self._emit(key, value, mode)

    def _emit(self, key: str, value: Any, mode: str) -> None:
        if self._sink is not None:
            self._sink(key, value, mode)

    def _delete(self, segments: List[str]) -> bool:
        parent = self._values
        for segment in segments[:-1]:
            child = parent.get(segment)
            if not isinstance(child, dict):
                return False
            parent = child
        return parent.pop(segments[-1], None) is not None

    def __getitem__(self, key: str) -> Any:
        node: Any = self._values
        for segment in key.split("."):
            if not isinstance(node, dict) or segment not in node:
                raise KeyError(key)
            node = node[segment]
        return node

    def __setitem__(self, key: str, value: Any) -> None:
        self.record(key, value, "replace")

    def __delitem__(self, key: str) -> None:
        if not self._delete(check_key(key)):
            raise KeyError(key)
        self._emit(key, None, "replace")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def snapshot(self) -> Dict[str, Any]:
        if not self._values:  # most predictions record none: no deepcopy machinery
            return {}
        import copy

        return copy.deepcopy(self._values)


class Scope:
    """What model code can reach while a prediction runs."""

    def __init__(
        self,
        context: Optional[Mapping[str, str]] = None,
        sink: Optional[MetricSink] = None,
    ) -> None:
        self.context: Dict[str, str] = dict(context or {})
        self.metrics = Metrics(sink)

    def record_metric(self, key: str, value: Any, mode: str = "replace") -> None:
        self.metrics.record(key, value, mode)


class _NullMetrics(Metrics):
    def record(self, key: str, value: Any, mode: str = "replace") -> None:
        del key, value, mode


class _NullScope(Scope):
    """Outside a prediction: recording is a no-op."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics = _NullMetrics()


_current: contextvars.ContextVar[Optional[Scope]] = contextvars.ContextVar(
    "vendo_scope", default=None
)


def current_scope() -> Scope:
    scope = _current.get()
    return scope if scope is not None else _NullScope()


def set_scope(scope: Optional[Scope]) -> contextvars.Token[Optional[Scope]]:
    return _current.set(scope)


def reset_scope(token: contextvars.Token[Optional[Scope]]) -> None:
    _current.reset(token)
