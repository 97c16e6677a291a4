"""The queue's PostgreSQL tests: a store on the throwaway database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vendo.store import Store


@pytest.fixture
def pg_store(pg_only_url: str) -> Iterator[Store]:
    s = Store.open(pg_only_url)
    yield s
    s.close()
