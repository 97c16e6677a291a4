from __future__ import annotations

from pathlib import Path

import pytest

from vendo.config import Settings


@pytest.fixture(scope="session")
def uv_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uv cache for the session, kept between runs so package installs stay fast."""
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    if cache is not None:
        return Path(cache.mkdir("vendo-uv-cache"))
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture(scope="session")
def shared_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A data dir shared by the tests that build the same fixture models."""
    return Settings(data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")
