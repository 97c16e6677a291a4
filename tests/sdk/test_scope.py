"""Metric recording rules (spec/cog.md §5)."""

from __future__ import annotations

from typing import Any

import pytest

from vendo.sdk import current_scope
from vendo.sdk.scope import MetricError, Scope, reset_scope, set_scope


def test_modes_and_dot_paths() -> None:
    sent: list[tuple[str, Any, str]] = []
    scope = Scope({"k": "v"}, lambda *args: sent.append(args))
    scope.record_metric("a.b.c", 1)
    scope.metrics.record("a.b.c", 2, mode="incr")
    scope.metrics.record("list", 1, mode="append")
    scope.metrics.record("list", 2, mode="append")
    scope.metrics["s"] = "x"
    assert scope.metrics.snapshot() == {"a": {"b": {"c": 3}}, "list": [1, 2], "s": "x"}
    assert scope.metrics["a.b.c"] == 3
    del scope.metrics["s"]
    scope.record_metric("list", None)
    assert scope.metrics.snapshot() == {"a": {"b": {"c": 3}}}
    scope.metrics["s"] = 1  # deleted first, so a new type is fine
    assert sent[0] == ("a.b.c", 1, "replace")
    assert scope.context == {"k": "v"}


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        ("", "non-empty"),
        ("x" * 129, "longer than 128"),
        ("a.b.c.d.e", "more than 4"),
        ("predict_time", "reserved"),
        ("cog.thing", "reserved"),
        ("a__b", "'__'"),
        ("1abc", "start with a letter"),
        ("abc_", "end with a letter or digit"),
        ("a..b", "start with a letter"),
    ],
)
def test_bad_keys_name_the_rule(key: str, rule: str) -> None:
    with pytest.raises(MetricError, match=rule):
        Scope().record_metric(key, 1)


def test_type_changes_and_bad_modes() -> None:
    scope = Scope()
    scope.record_metric("n", 1)
    scope.record_metric("n", 2.5)  # int and float are both numbers
    with pytest.raises(MetricError, match="changes type from number to string"):
        scope.record_metric("n", "x")
    with pytest.raises(MetricError, match="incr needs a number"):
        scope.metrics.record("n", "x", mode="incr")
    with pytest.raises(MetricError, match="delete it first"):
        scope.metrics.record("n", 1, mode="append")
    with pytest.raises(MetricError, match="mode must be one of"):
        scope.metrics.record("n", 1, mode="max")
    with pytest.raises(MetricError, match="already holds a value"):
        scope.record_metric("n.sub", 1)


def test_current_scope_follows_the_context_variable() -> None:
    scope = Scope({"a": "b"})
    token = set_scope(scope)
    try:
        assert current_scope() is scope
    finally:
        reset_scope(token)
    assert current_scope() is not scope
