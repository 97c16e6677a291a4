from __future__ import annotations

from collections.abc import Iterator

import pytest
from streaming_support import Server, register_models

MODELS = {
    "tokens": "sse_tokens",
    "coop": "cancel_cooperative",
    "stuck": "cancel_stuck",
}


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One platform for the streaming tests, with every fixture model registered (a
    server start is seconds of CPU: one per package, not one per module)."""
    root = tmp_path_factory.mktemp("platform")
    data_dir = root / "data"
    server = Server(data_dir, env={"VENDO_CANCEL_GRACE": "2", "VENDO_THROTTLE_INTERVAL": "0.2"})
    server.versions = register_models(data_dir, MODELS)  # type: ignore[attr-defined]
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def versions(server: Server) -> dict[str, str]:
    return server.versions  # type: ignore[attr-defined,no-any-return]
