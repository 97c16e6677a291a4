from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from .driver import Child

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def child() -> Iterator[Callable[..., Child]]:
    """Start runner children from fixture names; each is stopped after the test."""
    started: list[Child] = []

    def start(name: str, *args: Any, **kwargs: Any) -> Child:
        process = Child(FIXTURES / name, *args, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()
