from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # CI sets VENDO_REQUIRE_POSTGRES: a PostgreSQL test that cannot reach its server
    # must fail there, not skip (see tests/store/conftest.py for the check itself).
    del config, items


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def require_postgres() -> bool:
    return os.environ.get("VENDO_REQUIRE_POSTGRES", "") not in ("", "0")
