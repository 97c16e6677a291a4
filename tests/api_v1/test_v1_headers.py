from __future__ import annotations

import pytest

from vendo.api.v1.predictions import parse_cancel_after, parse_prefer_wait
from vendo.errors import InvalidInput


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("wait", 60),
        ("wait=5", 5),
        ("WAIT=5", 5),
        ("respond-async, wait=10", 10),
        ("wait=0", 1),
        ("wait=600", 60),
        ("wait=abc", None),
        ("return=minimal", None),
    ],
)
def test_prefer_wait(header: str | None, expected: int | None) -> None:
    assert parse_prefer_wait(header) == expected


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m45s", 5445), ("90", 90), ("2.5m", 150), ("1s", 5)],
)
def test_cancel_after(value: str, seconds: float) -> None:
    assert parse_cancel_after(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5x", "m", "-3", "nan", "inf"])
def test_cancel_after_rejects(value: str) -> None:
    with pytest.raises(InvalidInput, match="Cancel-After"):
        parse_cancel_after(value)
